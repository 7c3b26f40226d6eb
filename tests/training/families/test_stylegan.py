"""The stylegan family: networks at tiny widths, the modulated convolution's arithmetic, mixing and
truncation in the inference module, w_avg tracking, the training phases, resume and settings errors."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from gan_core.errors import UserError
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.families.base import DataInfo, StepContext
from training.families.stylegan import StyleGANFamily, stylegan_inputs
from training.nets.stylegan import ModulatedConv2d, StyleGenerator, num_ws
from training.trainer import Trainer

TINY = {"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8, "w_dim": 8, "mapping_layers": 2}
DATA = DataInfo((1, 28, 28), 10, tuple(map(str, range(10))))


def family(shape=(1, 28, 28), conditional=True, **fp) -> StyleGANFamily:
    cfg = preset("mnist-stylegan", conditional=conditional, latent_dim=8, arch_params=TINY, family_params=fp)
    fam = StyleGANFamily(cfg.resolved(), DataInfo(shape, 10, tuple(map(str, range(10)))))
    torch.manual_seed(0)
    fam.build()
    return fam


def inputs(fam: StyleGANFamily, n: int, seed: int = 0, psi: float = 1.0, mix: float | None = None):
    """The inference module's positional inputs: z, [labels], psi, z_mix, mix_layer, noise maps."""
    g = torch.Generator().manual_seed(seed)
    z, z_mix = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    labels = [torch.arange(n) % 10] if fam.cfg.conditional else []
    noise = [torch.randn(n, *s, generator=g) for s in fam.noise_shapes]
    mix_layer = torch.full((n,), float(num_ws(fam.data.image_shape) if mix is None else mix))
    return [z, *labels, torch.full((n,), psi), z_mix, mix_layer, *noise]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("conditional", [False, True])
def test_networks_build_from_the_image_shape(shape, conditional):
    fam = family(shape, conditional)
    g, d = fam.nets["g"], fam.nets["d"]
    want_res = {28: [7, 14, 28], 32: [4, 8, 16, 32], 64: [4, 8, 16, 32, 64]}[shape[1]]
    assert g.synthesis.res == want_res and g.num_ws == 2 * len(want_res)
    assert [i.name for i in fam.card_inputs()] == (
        ["z"] + (["labels"] if conditional else []) + ["truncation_psi", "z_mix", "mix_layer"]
        + [f"noise_{r}" for r in want_res]
    )  # fmt: skip
    inf = fam.inference_module(g)
    x = inf(*inputs(fam, 3))
    assert x.shape == (3, *shape) and x.abs().max() <= 1.0
    labels = torch.arange(3) if conditional else None
    g.train()
    noise = [torch.randn(3, *s) for s in fam.noise_shapes]
    assert g(torch.randn(3, 8), labels, noise).shape == (3, *shape)
    assert d(x, labels).shape == (3,)


def test_modulated_conv_equals_per_sample_modulated_weights():
    """Scaling activations by the style, one shared conv, then the demodulation scale == modulating the
    weights per sample (StyleGAN2's grouped-conv formulation), for every sample of a batch."""
    torch.manual_seed(0)
    mc = ModulatedConv2d(5, 6, 3, w_dim=4, out_gain=1.7)
    x, w = torch.randn(3, 5, 7, 7), torch.randn(3, 4)
    got = mc(x, w)
    styles = mc.affine(w)
    weight = mc.weight * mc.weight_gain
    for i in range(3):
        wi = weight * styles[i][None, :, None, None]
        wi = wi * torch.rsqrt(wi.square().sum((1, 2, 3)) + 1e-8)[:, None, None, None]
        want = F.conv2d(x[i : i + 1], wi, padding=1) * 1.7
        assert torch.allclose(got[i : i + 1], want, atol=1e-5)


def test_mixing_truncation_and_noise_in_the_inference_module():
    fam = family()
    g = fam.nets["g"].eval()
    g.w_avg.normal_()  # as if tracked
    inf = fam.inference_module(g)
    n_ws = num_ws(DATA.image_shape)
    base = inputs(fam, 4)
    unmixed = inf(*base)
    z, labels, psi, z_mix, _, *noise = base
    # mix_layer >= num_ws: z_mix is ignored; mix_layer 0: every layer from z_mix
    assert torch.equal(inf(*inputs(fam, 4, mix=n_ws)), unmixed)
    assert torch.equal(inf(z, labels, psi, torch.randn(4, 8), torch.full((4,), float(n_ws)), *noise), unmixed)
    from_mix = inf(z_mix, labels, psi, z, torch.full((4,), float(n_ws)), *noise)
    assert torch.allclose(inf(z, labels, psi, z_mix, torch.zeros(4), *noise), from_mix, atol=1e-6)
    partial = inf(z, labels, psi, z_mix, torch.full((4,), 3.0), *noise)
    assert not torch.allclose(partial, unmixed) and not torch.allclose(partial, from_mix)
    # the graph's mixing equals the training forward's cutoff mixing (same ws)
    ws = g.mapping(z, labels)[:, None].repeat(1, n_ws, 1)
    ws[:, 3:] = g.mapping(z_mix, labels)[:, None]
    assert torch.allclose(g.synthesis(ws, noise).clamp(-1, 1), partial, atol=1e-6)
    # psi 0: every image is its class's average w, whatever z
    zero = torch.zeros(4)
    a = inf(z, labels, zero, z_mix, torch.full((4,), float(n_ws)), *noise)
    b = inf(torch.randn(4, 8), labels, zero, z_mix, torch.full((4,), float(n_ws)), *noise)
    assert torch.allclose(a, b, atol=1e-6)
    # noise matters once its strength is non-zero
    for layer in g.synthesis.layers:
        layer.noise_strength.data.fill_(0.5)
    assert not torch.allclose(inf(*base), inf(*base[:5], *[torch.zeros_like(t) for t in noise]))


def test_w_avg_tracks_each_class_present():
    g = StyleGenerator(8, 3, True, (1, 28, 28), w_dim=2, width=4, max_width=8)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    g.update_w_avg(w, torch.tensor([0, 0, 2]), beta=0.5)
    assert torch.allclose(g.w_avg, torch.tensor([[1.0, 1.5], [0.0, 0.0], [5.0, 5.0]]))
    u = StyleGenerator(8, 3, False, (1, 28, 28), w_dim=2, width=4, max_width=8)
    u.update_w_avg(w, None, beta=0.75)
    assert torch.allclose(u.w_avg, 0.25 * w.mean(0, keepdim=True))


def test_card_inputs_declare_the_controls():
    specs = {i.name: i for i in stylegan_inputs(16, True, (1, 28, 28))}
    assert (specs["truncation_psi"].kind, specs["truncation_psi"].default, specs["truncation_psi"].range) == (
        "scalar", 1.0, (0.0, 1.5),
    )  # fmt: skip
    assert (specs["mix_layer"].default, specs["mix_layer"].range) == (6.0, (0.0, 6.0))
    assert specs["z_mix"].kind == "latent" and specs["z_mix"].shape == [16]
    assert [(s.kind, s.shape) for n, s in specs.items() if n.startswith("noise_")] == [
        ("noise", [1, 7, 7]), ("noise", [2, 14, 14]), ("noise", [2, 28, 28]),
    ]  # fmt: skip


def _cfg(out, steps, **fp):
    return preset("mnist-stylegan", out=str(out), steps=steps, batch_size=8, latent_dim=8, arch_params=TINY,
                  family_params={"r1_every": 2, **fp}, threads=1, eval_every=0, log_every=1,
                  sample_every=100, ckpt_every=100)  # fmt: skip


def test_phases_train_and_resume_bit_identically(mnist_small, tmp_path):
    from gan_core.datasets import load_dataset

    ds = load_dataset(mnist_small)
    fp = {"pl_weight": 2.0, "pl_every": 2}
    straight = Trainer(_cfg(tmp_path / "a", 4, **fp), ds, progress=False)
    assert [p.name for p in straight.family.phases()] == ["g", "g_pl", "d", "d_r1"]
    res = straight.train()
    import json

    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(k for k in r if k.endswith(("loss", "penalty"))) for r in recs[:2]] == [
        ["d_loss", "g_loss", "pl_penalty", "r1_penalty"], ["d_loss", "g_loss"],
    ]  # fmt: skip
    assert all(math.isfinite(v) for r in recs for k, v in r.items() if k.endswith(("loss", "penalty")))
    ck = load_checkpoint(res.checkpoint)
    assert float(ck.tensors["family.pl_mean"]) > 0 and ck.tensors["g_ema.w_avg"].abs().sum() > 0
    assert torch.equal(ck.tensors["g_ema.w_avg"], ck.tensors["g.w_avg"])  # EMA copies buffers
    Trainer(_cfg(tmp_path / "b", 2, **fp), ds, progress=False).train()
    res_b = Trainer(_cfg(tmp_path / "b", 4, **fp), ds, resume=True, progress=False).train()
    a, b = ck.tensors, load_checkpoint(res_b.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = build_generator(ck)
    fam = StyleGANFamily(ck.config.resolved(), DATA)
    assert g(*inputs(fam, 2)).shape == (2, 1, 28, 28)


def test_augment_reaches_every_d_call_and_r1_takes_its_gradient_through_it(mnist_small, tmp_path):
    from gan_core.datasets import load_dataset

    ds = load_dataset(mnist_small)
    cfg = _cfg(tmp_path / "a", 2).model_copy(update={"diffaugment": "translation,cutout"})
    trainer = Trainer(cfg, ds, progress=False)
    fam, seen = trainer.family, []
    plain = fam.diffaugment

    def recording(x, ctx):
        out = plain(x, ctx)
        seen.append((x.shape[0], x.requires_grad, bool((out != x).any())))
        return out

    fam.diffaugment = recording
    res = trainer.train()
    # per step: Gmain's fakes (8, with grad), Dmain's [real; fake] (16); Dreg's reals every 2nd step
    assert seen == [(8, True, True), (16, False, True), (8, True, True), (8, True, True), (16, False, True)]
    straight = load_checkpoint(res.checkpoint).tensors
    Trainer(cfg.model_copy(update={"out": str(tmp_path / "b"), "steps": 1}), ds, progress=False).train()
    resumed = Trainer(
        cfg.model_copy(update={"out": str(tmp_path / "b")}), ds, resume=True, progress=False
    ).train()
    b = load_checkpoint(resumed.checkpoint).tensors
    assert all(torch.equal(straight[k], b[k]) for k in straight)  # the draws are checkpointed
    plain_run = Trainer(_cfg(tmp_path / "c", 2), ds, progress=False).train()
    c = load_checkpoint(plain_run.checkpoint).tensors
    assert not torch.equal(
        straight["d.epilogue.out.weight"], c["d.epilogue.out.weight"]
    )  # D saw other images


def test_the_class_head_learns_the_reals_and_pulls_g_towards_the_asked_class(mnist_small, tmp_path):
    """aux_weight gives D ACGAN's class head: D's class loss on real images, G's on its fakes; off, D has no head."""
    import json

    from gan_core.datasets import load_dataset
    from training.families.terms import aux_loss

    ds = load_dataset(mnist_small)
    res = Trainer(_cfg(tmp_path / "a", 2, aux_weight=0.5), ds, progress=False).train()
    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all({"g_aux", "aux_real"} <= r.keys() and r["g_aux"] > 0 and r["aux_real"] > 0 for r in recs)
    tensors = load_checkpoint(res.checkpoint).tensors
    assert tensors["d.classes.weight"].shape == (10, 8)  # classes x the epilogue's channels (d_max_width)
    fam = family(aux_weight=0.5)
    D, x, y = fam.nets["d"], torch.randn(4, 1, 28, 28), torch.tensor([3, 1, 4, 1])
    logit, classes = D(x, y, classes=True)
    assert logit.shape == (4,) and classes.shape == (4, 10) and torch.equal(logit, D(x, y))
    assert aux_loss(classes, y, "hinge") != aux_loss(classes, (y + 1) % 10, "hinge")

    def g_update(weight: float) -> list[torch.Tensor]:
        """How one Gmain moves G's weights, same nets and draws, the class term at `weight`."""
        fam = family(aux_weight=0.5)
        fam.p = fam.p.model_copy(update={"aux_weight": weight})
        batch = lambda: (torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8) % 10)  # noqa: E731
        ctx = StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets, batch,
                          contextlib.nullcontext)  # fmt: skip
        before = [p.detach().clone() for p in fam.nets["g"].parameters()]
        fam.g_main(ctx)
        return [p.detach() - b for p, b in zip(fam.nets["g"].parameters(), before, strict=True)]

    with_head, without = g_update(0.5), g_update(0.0)
    assert any(not torch.equal(a, b) for a, b in zip(with_head, without, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(without, g_update(0.0), strict=True))
    plain = family()
    assert plain.nets["d"].classes is None and not any("classes" in k for k in plain.nets["d"].state_dict())
    with pytest.raises(ValueError, match="no class head"):
        plain.nets["d"](x, y, classes=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"family_params": {"r1_gama": 1}},
            "family_params.r1_gama: not a setting of the stylegan family (got 1; allowed: r1_gamma, r1_every, "
            "style_mixing, pl_weight, pl_every, pl_decay, pl_batch_shrink, w_avg_beta, aux_weight, aux_loss)",
        ),
        (
            {"family_params": {"style_mixing": 2}},
            "family_params.style_mixing: Input should be less than or equal to 1 (got 2; allowed: number >= 0, <= 1)",
        ),
        (
            {"arch_params": {"g_width": 0}},
            "arch_params.g_width: Input should be greater than or equal to 1 (got 0; allowed: int >= 1)",
        ),
        ({"loss": "hinge"}, "loss: the stylegan family trains with the logistic 'ns' loss + R1, got 'hinge'"),
        (
            {"conditional": False, "family_params": {"aux_weight": 1.0}},
            "family_params.aux_weight: the class head needs labels (conditional: true)",
        ),
        (
            {"arch": "dcgan2"},
            "arch: the 'stylegan' family builds its own 'stylegan' networks, got arch='dcgan2'",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(UserError) as e:
        preset("mnist-stylegan", **override).resolved()
    assert str(e.value) == message
