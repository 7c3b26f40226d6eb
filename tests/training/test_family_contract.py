"""The family contract: presets keep their exact numbers, families are found automatically, and
phases with intervals, repeats, a schedule and extra state run and resume exactly."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gan_core.datasets import ImageDataset
from training import registry
from training.checkpoint import build_generator, load_checkpoint
from training.config import TrainConfig, preset
from training.families.base import Phase
from training.families.gan import AdversarialFamily
from training.registry import FAMILIES, get_family, register_family
from training.trainer import Trainer

GOLDEN = json.loads((Path(__file__).parent / "golden_weights.json").read_text())["presets"]


@pytest.fixture(scope="module")
def mnist2k(mnist_train):
    return ImageDataset(
        mnist_train.images[:2000].copy(),
        mnist_train.labels[:2000].copy(),
        mnist_train.class_names,
        "mnist2k",
        "mnist2k",
    )


def prefix_digests(path) -> dict[str, list]:
    ck = load_checkpoint(path)
    out = {}
    for prefix in ("g.", "d.", "g_ema.", "g_ema_raw.", "opt_g.", "opt_d.", "rng."):
        h = hashlib.sha256()
        keys = sorted(k for k in ck.tensors if k.startswith(prefix))
        for k in keys:
            h.update(k.encode())
            h.update(ck.tensors[k].contiguous().numpy().tobytes())
        out[prefix] = [len(keys), h.hexdigest()]
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_presets_train_bit_identically_to_before_the_family_refactor(name, mnist2k, tmp_path):
    want = GOLDEN[name]
    cfg = preset(
        name,
        out=str(tmp_path),
        steps=want["steps"],
        threads=1,
        eval_every=0,
        sample_every=1000,
        ckpt_every=1000,
    )
    res = Trainer(cfg, mnist2k, progress=False).train()
    got = prefix_digests(res.checkpoint)
    assert {k: v for k, v in want.items() if k != "steps"} == got


def test_families_are_discovered_from_their_folder(tmp_path, monkeypatch):
    import training.families

    pkg_dir = tmp_path / "extra_families"
    pkg_dir.mkdir()
    (pkg_dir / "toy_family_for_discovery.py").write_text(
        textwrap.dedent(
            """
            from training.families.gan import AdversarialFamily
            from training.registry import register_family

            @register_family("toy-discovered")
            class Toy(AdversarialFamily):
                pass
            """
        )
    )
    monkeypatch.setattr(training.families, "__path__", [*training.families.__path__, str(pkg_dir)])
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "training.families.toy_family_for_discovery", raising=False)
    try:
        assert get_family("toy-discovered").name == "toy-discovered"
        assert get_family("gan") is AdversarialFamily
    finally:
        FAMILIES.pop("toy-discovered", None)
    with pytest.raises(KeyError, match=r"unknown family 'nope'; known: .*gan"):
        get_family("nope")


@register_family("test-phases")
class PhasedFamily(AdversarialFamily):
    """The classic family plus a lazy regulariser every 3 steps, a schedule and a counter in the checkpoint."""

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.calls = torch.zeros(3, dtype=torch.int64)  # d, g, r1 phase runs
        self.scheduled: list[int] = []

    def phases(self):
        return [Phase("d", repeats=2), Phase("g", ema=True), Phase("r1", every=3)]

    def schedule(self, step):
        self.scheduled.append(step)

    def run_phase(self, phase, ctx):
        self.calls[["d", "g", "r1"].index(phase.name)] += 1
        if phase.name != "r1":
            return super().run_phase(phase, ctx)
        real, _ = ctx.next_batch()
        real.requires_grad_(True)
        out = ctx.nets["d"](real, None).sum()
        (grad,) = torch.autograd.grad(out, real, create_graph=True)
        loss = grad.pow(2).flatten(1).sum(1).mean()
        self.optimize("d", loss)
        return {"r1": loss.item()}

    def extra_state(self):
        return {"calls": self.calls}

    def load_extra_state(self, tensors):
        self.calls = tensors["calls"].clone()


def _phased(out, steps, **kw):
    return TrainConfig(name="phased", family="test-phases", arch="dcgan", arch_params={"g_width": 8, "d_width": 8},
                       latent_dim=8, batch_size=16, steps=steps, out=str(out), threads=1, log_every=3,
                       sample_every=100, ckpt_every=100, **kw)  # fmt: skip


def test_phases_intervals_repeats_schedule_and_extra_state_resume_exactly(mnist2k, tmp_path):
    straight = Trainer(_phased(tmp_path / "a", 7), mnist2k, progress=False)
    res = straight.train()
    assert straight.family.calls.tolist() == [14, 7, 3]  # d twice a step, g once, r1 at steps 0, 3, 6
    assert straight.family.scheduled == list(range(7))
    assert straight.batches == 14 + 3  # every phase's real batches came from the run's sampler
    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in recs][0] == ["d_loss", "elapsed_s", "g_loss", "images_per_s", "r1", "step"]
    Trainer(_phased(tmp_path / "b", 4), mnist2k, progress=False).train()
    resumed = Trainer(_phased(tmp_path / "b", 7), mnist2k, resume=True, progress=False)
    assert resumed.family.calls.tolist() == [8, 4, 2]  # restored from the checkpoint
    res_b = resumed.train()
    assert resumed.family.calls.tolist() == [14, 7, 3]
    a, b = load_checkpoint(res.checkpoint).tensors, load_checkpoint(res_b.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = build_generator(load_checkpoint(res.checkpoint))
    assert g(torch.randn(2, 8)).shape == (2, 1, 28, 28)
