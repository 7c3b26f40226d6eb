import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.datasets import load_dataset
from training.checkpoint import build_generator, list_checkpoints, load_checkpoint, resolve_checkpoint
from training.config import TrainConfig
from training.trainer import Trainer, TrainingError

TINY = {"g_width": 8, "d_width": 8}


def _cfg(out, **kw):
    base = dict(name="tiny", arch="dcgan", arch_params=TINY, conditional=True, latent_dim=8, batch_size=16, steps=6,
                sample_every=3, ckpt_every=3, log_every=2, out=str(out), threads=1)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def small(mnist_small):
    return load_dataset(mnist_small)


def _weights(path):
    ck = load_checkpoint(path)
    return {k: v for k, v in ck.tensors.items() if not k.startswith("rng.")}


@pytest.mark.parametrize(
    "loss,extra",
    [
        ("ns", {}),
        ("wgan-gp", {}),
        ("ns", {"diversity_weight": 1.0}),
        ("hinge", {"diffaugment": "color,translation,cutout"}),
    ],
)
def test_resume_is_bit_identical(tmp_path, small, loss, extra):
    straight = Trainer(
        _cfg(tmp_path / "a", loss=loss, ckpt_every=100, **extra), small, progress=False
    ).train()
    Trainer(_cfg(tmp_path / "b", loss=loss, steps=3, **extra), small, progress=False).train()
    resumed = Trainer(_cfg(tmp_path / "b", loss=loss, **extra), small, resume=True, progress=False).train()
    assert straight.step == resumed.step == 6
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_folder_contents(tmp_path, small):
    res = Trainer(_cfg(tmp_path, keep=1), small, progress=False).train()
    ckpts = list_checkpoints(tmp_path)
    assert [p.name for p in ckpts] == ["ckpt-0000006.safetensors"]  # keep=1 pruned step 3
    card = json.loads((tmp_path / "card.json").read_text())
    assert (
        card["steps"] == 6 and card["conditional"] and card["num_classes"] == 10 and card["latent_dim"] == 8
    )
    assert card["image_shape"] == [1, 28, 28] and card["dataset"]["n"] == 2000
    grid = Image.open(tmp_path / "samples.png")
    assert grid.size == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))  # 10 classes x 10 columns, 2x scale
    recs = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4, 6] and all(r["images_per_s"] > 0 for r in recs)
    assert not list(tmp_path.glob(".*.tmp"))
    g = build_generator(load_checkpoint(res.checkpoint))
    out = g(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))
    assert out.shape == (4, 1, 28, 28)


def test_resume_refuses_changed_config(tmp_path, small):
    Trainer(_cfg(tmp_path, steps=3), small, progress=False).train()
    with pytest.raises(TrainingError, match="latent_dim: checkpoint has 8, this run asks 9"):
        Trainer(_cfg(tmp_path, latent_dim=9), small, resume=True, progress=False)
    with pytest.raises(TrainingError, match="already holds checkpoints; pass --resume"):
        Trainer(_cfg(tmp_path), small, progress=False)


def test_nan_loss_stops_and_keeps_last_good(tmp_path, small):
    t = Trainer(_cfg(tmp_path, steps=10, ckpt_every=2), small, progress=False)
    orig = t.family.loss.g_loss
    t.family.loss.g_loss = lambda fake: orig(fake) * (float("nan") if t.step >= 3 else 1.0)
    with pytest.raises(TrainingError, match=r"diverged at step 3: .*non-finite.*ckpt-0000002.safetensors"):
        t.train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-0000002.safetensors"]
    assert torch.isfinite(
        torch.cat([v.flatten().float() for v in _weights(list_checkpoints(tmp_path)[-1]).values()])
    ).all()


def test_max_minutes_budget_stops_and_saves(tmp_path, small):
    res = Trainer(_cfg(tmp_path, steps=10_000, max_minutes=0.02), small, progress=False).train()
    assert res.stopped_by == "max_minutes" and 0 < res.step < 10_000
    assert load_checkpoint(tmp_path).step == res.step


def test_same_seed_same_weights(tmp_path, small):
    a = Trainer(_cfg(tmp_path / "a", steps=2), small, progress=False).train()
    b = Trainer(_cfg(tmp_path / "b", steps=2), small, progress=False).train()
    c = Trainer(_cfg(tmp_path / "c", steps=2, seed=1), small, progress=False).train()
    wa, wb, wc = _weights(a.checkpoint), _weights(b.checkpoint), _weights(c.checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["g.fc.0.weight"], wc["g.fc.0.weight"])
    assert np.isfinite(wa["g_ema.fc.1.running_var"].numpy()).all()


def test_linear_lr_decay_is_a_function_of_the_step(tmp_path, small):
    t = Trainer(_cfg(tmp_path, steps=10, lr_decay_from=0.5), small, progress=False)
    seen = []
    for step in (0, 4, 5, 7, 10):
        t.step = step
        t._set_learning_rates()
        seen.append((t.family.opts["g"].param_groups[0]["lr"], t.family.opts["d"].param_groups[0]["lr"]))
    base = 2e-4
    assert [g for g, d in seen] == pytest.approx([base, base, base, base * 0.6, 0.0])
    assert [d for g, d in seen] == pytest.approx([base, base, base, base * 0.6, 0.0])


def _scripted_quick_eval(fids):
    """A quick evaluation that reports the next FID of `fids` (caveat: a dict instead of a number)."""
    it = iter(fids)

    def quick_eval(trainer):
        v = next(it)
        return dict(v) if isinstance(v, dict) else {"fid": v}

    return quick_eval


def test_the_best_checkpoint_outlives_the_pruning_and_a_resume(tmp_path, small):
    t = Trainer(_cfg(tmp_path, steps=4, eval_every=1, ckpt_every=1, keep=1), small, progress=False)
    t.quick_eval = _scripted_quick_eval([5.0, 3.0, 4.0, 6.0])
    t.train()
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["ckpt-0000002.safetensors", "ckpt-0000004.safetensors"]  # keep=1, plus the best (FID 3)
    best = tmp_path / "best.safetensors"
    assert best.is_symlink() and best.resolve() == (tmp_path / "ckpt-0000002.safetensors").resolve()
    assert load_checkpoint(best).step == 2
    # `gan evaluate RUN/best.safetensors` writes into the checkpoint itself; a linked run folder stays a folder
    assert resolve_checkpoint(best) == (tmp_path / "ckpt-0000002.safetensors").resolve()
    (tmp_path.parent / "latest").symlink_to(tmp_path, target_is_directory=True)
    assert resolve_checkpoint(tmp_path.parent / "latest").name == "ckpt-0000004.safetensors"
    assert load_checkpoint(tmp_path).extra["best"] == {"step": 2, "fid": 3.0}
    # a resumed run knows the best so far: worse FIDs and a caveated one (a growing G) leave it alone
    cfg = _cfg(tmp_path, steps=7, eval_every=1, ckpt_every=1, keep=1)
    t = Trainer(cfg, small, resume=True, progress=False)
    t.quick_eval = _scripted_quick_eval([3.5, {"fid": 1.0, "caveat": "growing"}, 2.5])
    t.train()
    # step 7 is the best now: the old best (step 2) goes with the pruning
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-0000007.safetensors"]
    assert best.resolve().name == "ckpt-0000007.safetensors" and load_checkpoint(best).step == 7
    assert load_checkpoint(tmp_path).extra["best"] == {"step": 7, "fid": 2.5}
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_best_link_without_quick_evaluation(tmp_path, small):
    Trainer(_cfg(tmp_path, keep=1), small, progress=False).train()
    assert not (tmp_path / "best.safetensors").exists()
    assert load_checkpoint(tmp_path).extra["best"] is None
