"""The progan family: the growth schedule, fade-in arithmetic in G, D and the reals, growth transitions
during training (grids per stage, no gradients for inactive blocks), resume mid-fade, export shape."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from gan_core.errors import UserError
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.families.base import DataInfo, StepContext
from training.families.progan import ProGANFamily, growth_at
from training.families.terms import mode_seeking_penalty
from training.trainer import Trainer

TINY = {"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8}
SCHEDULE = {"stable_steps": [2, 2, 2], "fade_steps": [2, 2, 2]}


def family(shape=(1, 28, 28), conditional=True, schedule=SCHEDULE, **kw) -> ProGANFamily:
    cfg = preset(
        "mnist-progan", conditional=conditional, latent_dim=8, arch_params=TINY, family_params=schedule, **kw
    )
    fam = ProGANFamily(cfg.resolved(), DataInfo(shape, 10, tuple(map(str, range(10)))))
    torch.manual_seed(0)
    fam.build()
    return fam


def test_schedule_is_a_function_of_the_step():
    assert [growth_at(s, [1, 0, 0], [0, 0, 0]) for s in range(3)] == [(0, 1.0), (3, 1.0), (3, 1.0)]
    stable, fade = [3, 2, 1], [2, 4, 2]
    got = [growth_at(s, stable, fade) for s in range(18)]
    assert got == [
        (0, 1.0), (0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0),
        (2, 0.0), (2, 0.25), (2, 0.5), (2, 0.75), (2, 1.0), (3, 0.0), (3, 0.5),
        (3, 1.0), (3, 1.0), (3, 1.0), (3, 1.0),
    ]  # fmt: skip


def test_fade_in_blends_the_new_block_with_the_upsampled_previous_output():
    fam = family()
    g, d = fam.nets["g"].eval(), fam.nets["d"].eval()
    z, y = torch.randn(3, 8), torch.tensor([1, 2, 3])
    feats = g.features(z, y, 2)
    old = F.interpolate(g.torgb[1](feats[1]), scale_factor=2.0, mode="nearest")
    new = g.torgb[2](feats[2])
    for alpha in (0.0, 0.3, 1.0):
        g.set_growth(2, alpha)
        assert torch.allclose(g(z, y), (1 - alpha) * old + alpha * new, atol=1e-6)
    assert g(z, y).shape == (3, 1, 16, 16)
    # D: FromRGB of the pooled image blended with the new block's output, then the older blocks
    x = torch.randn(3, 1, 16, 16)
    d.set_growth(2, 0.3)
    h = torch.lerp(d.fromrgb[1](F.avg_pool2d(x, 2)), d.blocks[1](d.fromrgb[2](x)), 0.3)
    assert torch.allclose(d(x, y), d.epilogue(d.blocks[0](h), y), atol=1e-5)


def test_reals_are_padded_pooled_and_faded_like_the_generator():
    fam = family()
    real = torch.rand(2, 1, 28, 28) * 2 - 1
    padded = F.pad(real, (2, 2, 2, 2), value=-1.0)
    fam.schedule(0)
    assert torch.allclose(fam.reals_at_stage(real), F.avg_pool2d(padded, 8))
    fam.schedule(7)  # fading in 16 px at alpha 0.5
    assert (fam.stage, fam.alpha) == (2, 0.5)
    x16 = F.avg_pool2d(padded, 2)
    low = F.interpolate(F.avg_pool2d(x16, 2), scale_factor=2.0, mode="nearest")
    assert torch.allclose(fam.reals_at_stage(real), 0.5 * low + 0.5 * x16, atol=1e-6)
    fam.schedule(12)
    assert fam.stage == 3 and torch.equal(fam.reals_at_stage(real), padded)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_export_form_is_the_data_size_at_every_stage(shape):
    fam = family(shape, conditional=False)
    g = fam.nets["g"].eval()
    for stage in range(4):
        g.set_growth(stage, 1.0)
        x = fam.inference_module(g)(torch.randn(2, 8))
        assert x.shape == (2, *shape) and x.abs().max() <= 1.0
    x = torch.randn(2, *shape)
    fam.nets["d"].set_growth(3, 1.0)
    assert fam.nets["d"](F.pad(x, [(32 - shape[1]) // 2] * 4, value=-1.0)).shape == (2,)


def _cfg(out, steps):
    schedule = {"stable_steps": [2, 2, 2], "fade_steps": [2, 2, 4]}  # 32 px fades in over steps 10-13
    return preset("mnist-progan", out=str(out), steps=steps, batch_size=8, latent_dim=8, arch_params=TINY,
                  family_params=schedule, threads=1, eval_every=0, log_every=1, sample_every=2,
                  ckpt_every=100)  # fmt: skip


def test_growth_transitions_grids_gradients_and_resume_mid_fade(mnist_small, tmp_path):
    from gan_core.datasets import load_dataset

    ds = load_dataset(mnist_small)
    straight = Trainer(_cfg(tmp_path / "a", 14), ds, progress=False)
    grads = {}

    def spy(name, loss, _orig=straight.family.optimize):
        _orig(name, loss)
        grads[straight.step] = [p.grad is not None for p in straight.family.nets["g"].torgb.parameters()]

    straight.family.optimize = spy
    res = straight.train()
    # torgb 0..3 have (weight, bias): only the active resolution's (and the faded-out one's) get gradients
    assert grads[1] == [True, True, False, False, False, False, False, False]  # 4 px
    assert grads[3] == [True, True, True, True, False, False, False, False]  # fading in 8 px
    assert grads[5] == [False, False, True, True, False, False, False, False]  # 8 px
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == [
        "stage-16px-fade0.50-step-0000008.png", "stage-16px-step-0000010.png",
        "stage-32px-fade0.25-step-0000012.png", "stage-32px-fade0.75-step-0000014.png",
        "stage-4px-step-0000002.png", "stage-8px-fade0.50-step-0000004.png", "stage-8px-step-0000006.png",
    ]  # fmt: skip
    ck = load_checkpoint(res.checkpoint)
    assert (int(ck.tensors["family.stage"]), float(ck.tensors["family.alpha"])) == (3, 0.75)
    assert int(ck.tensors["g_ema.stage"]) == 3 and float(ck.tensors["g_ema.alpha"]) == 0.75
    assert ck.card.arch_params["resolution"] == 32 and ck.card.arch_params["fade_alpha"] == 0.75
    Trainer(_cfg(tmp_path / "b", 12), ds, progress=False).train()  # stops mid-fade (alpha 0.25)
    res_b = Trainer(_cfg(tmp_path / "b", 14), ds, resume=True, progress=False).train()
    a, b = ck.tensors, load_checkpoint(res_b.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = build_generator(ck)
    assert (g.stage, g.alpha) == (3, 0.75) and g(torch.randn(2, 8), torch.tensor([0, 1])).shape == (
        2,
        1,
        28,
        28,
    )


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_mode_seeking_term_pairs_labels_and_adds_its_penalty(weight):
    fam = family(diversity_weight=weight, batch_size=8)
    fam.schedule(0)
    seen = {}
    G = fam.nets["g"]

    def g_spy(z, labels, _orig=G.forward):
        seen["z"], seen["labels"], seen["fake"] = z, labels, _orig(z, labels)
        return seen["fake"]

    def d_spy(x, labels, _orig=fam.nets["d"].forward):
        seen["critic"] = _orig(x, labels)
        return seen["critic"]

    G.forward, fam.nets["d"].forward = g_spy, d_spy
    ctx = StepContext(
        0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets, None, contextlib.nullcontext
    )
    loss = fam.g_step(ctx)["g_loss"]
    want = -seen["critic"].float().mean().item()
    if weight:
        want += weight * mode_seeking_penalty(seen["fake"].float(), seen["z"], 4).item()
        assert torch.equal(seen["labels"][:4], seen["labels"][4:])  # pairs (i, i + 4) share a label
    assert loss == pytest.approx(want, rel=1e-5) and (weight == 0) == (
        loss == pytest.approx(-seen["critic"].mean().item())
    )


def test_schedule_must_match_the_resolutions():
    with pytest.raises(UserError) as e:
        family(schedule={"stable_steps": [2, 2], "fade_steps": [2, 2, 2]})
    assert str(e.value) == (
        "family_params.stable_steps: needs 3 entries (one per resolution 4, 8, 16; 32 px trains to the end), got [2, 2]"
    )
    with pytest.raises(
        UserError,
        match=r"^family_params\.fade_steps\.1: Input should be greater than or equal to 0 \(got -1; allowed: a list of int >= 0\)$",
    ):
        family(schedule={"stable_steps": [2, 2, 2], "fade_steps": [2, -1, 2]})
    with pytest.raises(UserError, match="loss: the progan family trains with WGAN-GP"):
        preset("mnist-progan", loss="hinge").resolved()
