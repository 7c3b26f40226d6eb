"""ACGAN: the auxiliary classifier head and its loss (raw logits, real + fake for D, fake for G),
which nets each step trains, shapes, export and resume."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_core.errors import UserError
from gan_core.runtime import open_generator
from tests.conftest import zl_feeds
from training.config import preset
from training.families.acgan import ACGANFamily
from training.families.base import DataInfo, StepContext
from training.families.terms import aux_loss

TINY = {"g_width": 8, "d_width": 8}


PAPER = {"projection": True, "class_loss": "ce", "d_fake_class": True}  # the paper's class losses


def family(shape=(1, 28, 28), **kw) -> ACGANFamily:
    if kw.setdefault("family_params", PAPER) is None:
        del kw["family_params"]  # the preset's own
    cfg = preset("mnist-acgan", arch_params=TINY, batch_size=8, **kw).resolved()
    fam = ACGANFamily(cfg, DataInfo(shape, 10, tuple("0123456789")))
    torch.manual_seed(0)
    fam.build()
    return fam


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_aux_loss_is_cross_entropy_on_raw_logits_with_the_softmax_gradient():
    logits = torch.tensor([[4.0, 0.0, -2.0], [0.5, 0.5, 3.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    loss = aux_loss(logits, labels)
    p = torch.softmax(logits.detach(), 1)
    assert torch.allclose(loss, -torch.log(p[torch.arange(2), labels]).mean())
    loss.backward()
    # d CE / d logits = (softmax - onehot) / N: a wrong confident guess gets a full-size gradient,
    # which a softmax layer before the loss would squash
    assert torch.allclose(logits.grad, (p - F.one_hot(labels, 3)) / 2, atol=1e-6)
    assert logits.grad[1].abs().max() > 0.4


def test_the_multi_class_hinge_stops_at_a_margin_of_one():
    # row 0: class 0 wins by 4 (no loss, no gradient); row 1: class 1 ties class 0 and loses to class 2 by 2.5
    logits = torch.tensor([[4.0, 0.0, -2.0], [0.5, 0.5, 3.0]], requires_grad=True)
    loss = aux_loss(logits, torch.tensor([0, 1]), "hinge")
    assert torch.allclose(loss, torch.tensor((0.0 + (1 - (0.5 - 3.0))) / 2))
    loss.backward()
    assert torch.equal(logits.grad[0], torch.zeros(3))
    # only the true class and the best other one move: up and down, by 1/N each
    assert torch.allclose(logits.grad[1], torch.tensor([0.0, -0.5, 0.5]))
    assert aux_loss(torch.tensor([[2.0, 0.5]]), torch.tensor([0]), "hinge").item() == 0.0  # margin 1.5
    assert aux_loss(torch.tensor([[1.0, 0.5]]), torch.tensor([0]), "hinge").item() == 0.5  # margin 0.5


def test_an_unknown_class_loss_is_refused_naming_the_choices():
    with pytest.raises(
        UserError,
        match=r"^family_params\.class_loss: not one of the choices \(got 'l2'; allowed: 'ce' or 'hinge'\)$",
    ):
        family(family_params={"projection": True, "class_loss": "l2"})


def test_the_preset_is_mhinge_and_its_d_step_logs_the_hinge_of_real_images():
    fam = family(family_params=None)
    assert (fam.p.class_loss, fam.p.d_fake_class, fam.p.projection, fam.p.aux_weight) == (
        "hinge", False, True, 0.5,
    )  # fmt: skip
    real, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8) % 10
    ctx = StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets, lambda: (real, labels),
                      contextlib.nullcontext)  # fmt: skip
    with torch.no_grad():
        _, cls = fam.nets["d"](real, labels)
        want = aux_loss(cls, labels, "hinge").item()
    assert (
        fam.d_step(ctx)["aux_real"] == pytest.approx(want, rel=1e-3) and want > 0.5
    )  # untrained: inside the margin


def test_the_class_head_returns_raw_logits_no_softmax_layer():
    fam = family()
    assert not any(isinstance(m, (torch.nn.Softmax, torch.nn.LogSoftmax)) for m in fam.nets["d"].modules())
    with torch.no_grad():
        _, cls = fam.nets["d"](torch.rand(4, 1, 28, 28) * 2 - 1, torch.arange(4))
    assert cls.shape == (4, 10) and not torch.allclose(cls.exp().sum(1), torch.ones(4))


def test_d_learns_classes_from_real_and_fake_and_g_from_fake_only():
    fam = family()
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    labels = torch.arange(8) % 10
    ctx = StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets, lambda: (real, labels),
                      contextlib.nullcontext)  # fmt: skip
    g0, d0 = snapshot(fam.nets["g"]), snapshot(fam.nets["d"])
    with torch.no_grad():
        _, cls = fam.nets["d"](real, labels)
        want_real = F.cross_entropy(cls, labels).item()
    logs = fam.d_step(ctx)
    assert set(logs) == {"d_loss", "aux_real", "aux_fake"}
    assert logs["aux_real"] == pytest.approx(want_real, rel=1e-3)  # real images, own labels (SN steps once)
    assert 1.5 < logs["aux_fake"] < 3.5  # fakes with the labels they were asked for (chance: ln 10)
    assert not changed(g0, fam.nets["g"])
    trunk_and_classes = {k for k in d0 if k.startswith(("d.net.", "aux."))}
    assert trunk_and_classes <= changed(d0, fam.nets["d"])
    g1, d1 = snapshot(fam.nets["g"]), snapshot(fam.nets["d"])
    logs = fam.g_step(ctx)
    assert set(logs) == {"g_loss", "g_aux"}
    assert changed(g1, fam.nets["g"]) == set(g1) and not changed(d1, fam.nets["d"])


def test_the_class_loss_alone_moves_g_towards_the_asked_class():
    fam = family(diversity_weight=0.0)
    g, d = fam.nets["g"], fam.nets["d"]
    z, y = torch.randn(8, 64), torch.full((8,), 3)
    _, cls = d(g(z, y), y)
    aux_loss(cls, y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_networks_build_from_the_image_shape(shape):
    fam = family(shape)
    g = fam.nets["g"].eval()
    x = g(torch.randn(3, 64), torch.tensor([0, 4, 9]))
    assert x.shape == (3, *shape)
    out, cls = fam.nets["d"](x, torch.tensor([0, 4, 9]))
    assert out.shape == (3,) and cls.shape == (3, 10)
    assert [i.name for i in fam.card_inputs()] == ["z", "labels"]


def test_unconditional_is_refused():
    with pytest.raises(ValueError, match="acgan generates the classes it is asked for"):
        preset("mnist-acgan", conditional=False).resolved()


def test_export_has_parity_and_serves_like_any_conditional_model(tiny_onnx):
    ckpt, path, card = tiny_onnx("mnist-acgan")
    assert card.export.parity_max_abs_diff <= 1 and card.conditional and card.variant == "acgan-hinge"
    assert "phase-convs" in card.export.exporter  # the DCGAN generator gets the fast export form
    sess = open_generator(path, threads=1)
    z = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    assert sess.run(zl_feeds(z, np.array([1, 2, 3]))).shape == (3, 28, 28, 1)


def test_with_projection_the_label_moves_the_adversarial_logit_not_the_class_logits():
    fam = family()  # the preset projects the label
    assert fam.p.projection is True
    d = fam.nets["d"].eval()
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        out_a, cls_a = d(x, torch.tensor([0, 1]))
        out_b, cls_b = d(x, torch.tensor([5, 6]))
    assert not torch.allclose(out_a, out_b) and torch.equal(cls_a, cls_b)


@pytest.mark.parametrize("d_fake_class", [True, False])
def test_without_d_fake_class_the_class_head_learns_from_real_images_only(d_fake_class):
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    labels = torch.arange(8) % 10
    heads = []
    for noise_seed in (1, 2):  # the same reals, other fakes
        fam = family(family_params={**PAPER, "d_fake_class": d_fake_class})
        ctx = StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(noise_seed), fam.nets,
                          lambda: (real, labels), contextlib.nullcontext)  # fmt: skip
        fam.d_step(ctx)
        heads.append({k: v for k, v in snapshot(fam.nets["d"]).items() if k.startswith("aux.")})
    same = all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert heads[0] and same is (not d_fake_class)
