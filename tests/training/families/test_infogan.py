"""InfoGAN: the mutual-information term, its gradient paths (Q trained by both steps), the Q head,
the code inputs through the card, ONNX export and resume."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from gan_core.datasets import load_dataset
from gan_core.errors import UserError
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.families.base import DataInfo, StepContext
from training.families.infogan import InfoGANFamily, info_loss
from training.trainer import Trainer

TINY = {"g_width": 8, "d_width": 8}


def family(shape=(1, 28, 28), **params) -> InfoGANFamily:
    cfg = preset("mnist-infogan", arch_params=TINY, batch_size=8, family_params=params).resolved()
    fam = InfoGANFamily(cfg, DataInfo(shape, 10, tuple("0123456789")))
    torch.manual_seed(0)
    fam.build()
    return fam


def context(fam: InfoGANFamily, shape=(1, 28, 28)) -> StepContext:
    real = torch.rand(8, *shape) * 2 - 1
    labels = torch.zeros(8, dtype=torch.int64)
    import contextlib

    return StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets,
                       lambda: (real, labels), contextlib.nullcontext)  # fmt: skip


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_info_loss_is_cross_entropy_plus_gaussian_nll_with_the_papers_weights():
    torch.manual_seed(0)
    q = torch.randn(5, 10 + 4)
    cat, cont = torch.randint(0, 10, (5,)), torch.rand(5, 2) * 2 - 1
    total, ce, nll = info_loss(q, cat, cont, 1.0, 0.1)
    assert torch.allclose(ce, F.cross_entropy(q[:, :10], cat))
    mean, logvar = q[:, 10:12], q[:, 12:14]
    want = (
        (0.5 * math.log(2 * math.pi) + 0.5 * logvar + (cont - mean) ** 2 / (2 * logvar.exp())).sum(1).mean()
    )
    assert torch.allclose(nll, want, atol=1e-5)
    assert torch.allclose(total, ce + 0.1 * nll)
    # a confident, right Q explains the categorical code away; a wrong one pays log-odds
    sure = torch.full((5, 14), -20.0)
    sure[torch.arange(5), cat] = 20.0
    assert info_loss(sure, cat, cont, 1.0, 0.1)[1] < 1e-6


def test_self_condition_projects_the_code_given_for_fakes_and_qs_guess_for_reals():
    fam = family(self_condition=True)
    d = fam.nets["d"].eval()
    assert d.d.embed.num_embeddings == 10  # D projects the 10-way code
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        guessed, q = d(x, label_fn=lambda q: q[:, :10].argmax(1))
        torch.testing.assert_close(guessed, d(x, q[:, :10].argmax(1))[0])
        assert not torch.equal(
            d(x, torch.zeros(4, dtype=torch.int64))[0], d(x, torch.ones(4, dtype=torch.int64))[0]
        )
    d.train()
    ctx = context(fam)
    assert set(fam.d_step(ctx)) == {"d_loss", "info_cat", "info_cont"} and "g_loss" in fam.g_step(ctx)


def test_the_d_step_trains_trunk_and_q_not_g_and_the_g_step_trains_g_and_q_not_the_trunk():
    fam = family()
    ctx = context(fam)
    g0, d0 = snapshot(fam.nets["g"]), snapshot(fam.nets["d"])
    logs = fam.d_step(ctx)
    assert set(logs) == {"d_loss", "info_cat", "info_cont"}
    assert not changed(g0, fam.nets["g"])
    moved = changed(d0, fam.nets["d"])
    assert any(k.startswith("aux.") for k in moved) and any(k.startswith("d.net.") for k in moved)
    g1, d1 = snapshot(fam.nets["g"]), snapshot(fam.nets["d"])
    fam.g_step(ctx)
    assert changed(g1, fam.nets["g"]) == set(g1)  # every G weight gets the adversarial + MI gradient
    moved = changed(d1, fam.nets["d"])
    assert moved and all(k.startswith("aux.") for k in moved)  # Q only: the trunk belongs to D's step


def test_the_mi_term_alone_sends_gradient_through_the_image_into_g():
    fam = family()
    g, d = fam.nets["g"], fam.nets["d"]
    z, cat, cont = fam.draw_codes(8, torch.Generator().manual_seed(3))
    _, q = d(g(torch.cat([z, cont], 1), cat))
    total, _, _ = fam._info(q, cat, cont)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    assert all(p.grad is not None for p in d.aux.parameters())


def test_q_learns_to_read_the_codes_in_a_few_steps(mnist_small, tmp_path):
    # the paper's InfoGAN (family_params={}: no clusterer, D unconditional)
    cfg = preset("mnist-infogan", out=str(tmp_path), steps=30, batch_size=16, arch_params=TINY, threads=1,
                 eval_every=0, log_every=10, sample_every=1000, ckpt_every=1000, family_params={})  # fmt: skip
    trainer = Trainer(cfg, load_dataset(mnist_small), progress=False)
    trainer.train()
    recs = [
        r for r in map(eval_json, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "info_cat" in r
    ]
    first, last = recs[0]["info_cat"], recs[-1]["info_cat"]
    assert first > 1.8 and last < 0.6 * first  # ln 10 = 2.30 at chance
    assert recs[-1]["info_cont"] < recs[0]["info_cont"]


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_networks_build_from_the_image_shape_and_the_card_declares_the_codes(shape):
    fam = family(shape)
    g = fam.inference_module(fam.nets["g"]).eval()
    card = [i.model_dump(exclude_defaults=True) for i in fam.card_inputs()]
    assert [(i["name"], i["kind"]) for i in card] == [("z", "latent"), ("digit", "categorical"),
                                                     ("c1", "continuous"), ("c2", "continuous")]  # fmt: skip
    assert card[0]["shape"] == [62] and card[1]["num_choices"] == 10
    assert card[2]["range"] == (-1.0, 1.0) and card[2]["distribution"] == "uniform"
    z = torch.randn(3, 62)
    x = g(z, torch.tensor([0, 1, 2]), torch.zeros(3), torch.ones(3))
    assert x.shape == (3, *shape) and x.abs().max() <= 1
    logits, q = fam.nets["d"](x)
    assert logits.shape == (3,) and q.shape == (3, 10 + 2 * 2)
    imgs, cols = fam.grid(g, torch.device("cpu"))
    assert imgs.shape == (100, shape[1], shape[2], shape[0]) and cols == 10


def test_unknown_settings_and_labels_are_refused():
    with pytest.raises(
        UserError,
        match=r"^family_params\.lambda: not a setting of the infogan family \(got 1; allowed: cluster_heads, ",
    ):
        family(**{"lambda": 1})
    with pytest.raises(UserError, match="^infogan is unsupervised: conditional must be false"):
        preset("mnist-infogan", conditional=True).resolved()


def test_export_feeds_the_codes_by_name_with_parity(tiny_onnx):
    ckpt, path, card = tiny_onnx("mnist-infogan")
    graph = onnx.load(path)
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.graph.input] == [
        ("z", onnx.TensorProto.FLOAT), ("digit", onnx.TensorProto.INT64),
        ("c1", onnx.TensorProto.FLOAT), ("c2", onnx.TensorProto.FLOAT),
    ]  # fmt: skip
    assert card.export.parity_batches == [1, 7, 256] and card.export.parity_max_abs_diff <= 1
    assert "phase-convs" in card.export.exporter  # the wrapped DCGAN generator gets the fast form too
    assert not card.conditional and card.latent_dim == 62
    sess = open_generator(path, threads=1)
    feeds = build_feeds(sess.card, 5, range(4), {"digit": [0, 3, 3, 9], "c1": 0.5})
    g = build_generator(load_checkpoint(ckpt))
    with torch.no_grad():
        want = g(*[torch.from_numpy(feeds[i.name]) for i in sess.card.inputs]).numpy()
    got = sess.run(feeds).astype(np.float64) / 127.5 - 1
    assert np.abs(got.transpose(0, 3, 1, 2) - want).max() <= 1.5 / 127.5
    other = sess.run({**feeds, "digit": np.array([1, 3, 3, 9])})
    assert not np.array_equal(other[0], sess.run(feeds)[0]) and np.array_equal(other[1:], sess.run(feeds)[1:])


def test_builds_on_the_mlp_networks_too():
    """Q reads the MLP discriminator's flattened features (the two-head wrapper once fed it images)."""
    # the paper's InfoGAN, D projecting Q's guess for reals, the clusterer (the preset)
    for params in ({}, {"self_condition": True}, preset("mnist-infogan").family_params):
        cfg = preset("mnist-infogan", arch="mlp", arch_params={"g_hidden": [16], "d_hidden": [16, 8]},
                     loss="ns", spectral_norm=False, batch_size=8, family_params=params).resolved()  # fmt: skip
        fam = InfoGANFamily(cfg, DataInfo((1, 28, 28), 10, tuple("0123456789")))
        torch.manual_seed(0)
        fam.build()
        if not params:
            logits, q = fam.nets["d"](torch.rand(8, 1, 28, 28))
            assert logits.shape == (8,) and q.shape == (8, 10 + 2 * 2)
        stats = fam.d_step(context(fam))
        assert math.isfinite(stats["d_loss"]) and math.isfinite(stats["info_cat"])
        assert math.isfinite(fam.g_step(context(fam))["g_info"])


def test_iic_loss_is_minus_log_k_for_agreeing_balanced_pairs_and_zero_for_independent_ones():
    from training.families._iic import iic_loss

    k = 10
    sure = torch.full((40, k), -30.0)
    sure[torch.arange(40), torch.arange(40) % k] = 30.0
    assert iic_loss(sure, sure).item() == pytest.approx(-math.log(k), abs=1e-4)
    shuffled = sure[torch.randperm(40, generator=torch.Generator().manual_seed(0))]
    assert iic_loss(sure, shuffled).item() > -math.log(k) + 0.5  # pairs that disagree share less information
    flat = torch.zeros(40, k)
    assert abs(iic_loss(flat, flat).item()) < 1e-6  # one cluster's worth of certainty: no information
    one = torch.full((40, k), -30.0)
    one[:, 0] = 30.0  # everything under one code: agreeing, but no information either
    assert abs(iic_loss(one, one).item()) < 1e-4
    a = torch.randn(40, k, requires_grad=True)
    iic_loss(a, a.detach().roll(1, 0)).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_random_affine_is_seeded_stays_in_range_and_warps_a_little():
    from training.families._iic import random_affine

    x = torch.full((6, 1, 28, 28), -1.0)
    x[:, :, 9:19, 11:17] = 1.0  # a bright bar on the background
    a = random_affine(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, random_affine(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, random_affine(x, torch.Generator().manual_seed(4)))
    assert a.min() >= -1 and a.max() <= 1
    moved = (a - x).abs().flatten(1).mean(1)
    assert (moved > 0.01).all() and (moved < 0.5).all()  # each copy changed, none beyond recognition
    mass = (a + 1).flatten(1).sum(1) / (x + 1).flatten(1).sum(1)
    assert ((mass > 0.6) & (mass < 1.6)).all()  # the bar is still there (scale +-15%, noise on half)


def test_iic_lamb_weights_the_marginals_entropy():
    from training.families._iic import iic_loss

    k = 10
    sure = torch.full((40, k), -30.0)
    sure[torch.arange(40), torch.arange(40) % k] = 30.0
    # agreeing balanced pairs: (1 - 2 lamb) log K, so -2 log K at lamb 1.5
    assert iic_loss(sure, sure, lamb=1.5).item() == pytest.approx(-2 * math.log(k), abs=1e-4)
    classes = torch.arange(40) % k
    classes[classes == 1] = 0  # a clustering that files two classes under one cluster
    merged = torch.full((40, k), -30.0)
    merged[torch.arange(40), classes] = 30.0
    gain = iic_loss(merged, merged) - iic_loss(sure, sure)
    assert iic_loss(merged, merged, lamb=1.5) - iic_loss(sure, sure, lamb=1.5) > gain > 0  # costs more


def clustering_family(**params) -> InfoGANFamily:
    return family(self_condition=True, cluster_steps=2, cluster_width=4, cluster_heads=3, **params)


def test_the_clusterer_trains_alone_for_cluster_steps_then_is_frozen_while_g_and_d_train():
    fam = clustering_family()
    c = fam.nets["c"]
    assert len(c.heads) == 3 and len(c.over) == 3 and fam.clustering
    fam.schedule(0)
    assert [p.name for p in fam.phases()] == ["cluster"]
    assert "clustering the reals until step 2" in fam.eval_caveat()
    ctx = context(fam)
    g0, d0, c0 = snapshot(fam.nets["g"]), snapshot(fam.nets["d"]), snapshot(c)
    logs = fam.phases()[0].run(ctx)
    assert set(logs) == {"iic"} and logs["iic"] < 0 and c.updates.item() == 1
    assert changed(c0, c) == set(c0) and not changed(g0, fam.nets["g"]) and not changed(d0, fam.nets["d"])
    fam.schedule(2)
    assert [p.name for p in fam.phases()] == ["d", "g"] and fam.eval_caveat() is None
    c1 = snapshot(c)
    stats = {k: v.clone() for k, v in c.state_dict().items() if "running" in k}
    for phase in fam.phases():
        phase.run(ctx)
    assert not changed(c1, c)  # frozen: its weights and BatchNorm statistics stay
    assert all(torch.equal(stats[k], c.state_dict()[k]) for k in stats)
    assert "c" in fam.opts and "c" not in family(self_condition=True).nets  # off by default


def test_d_projects_the_clusterers_label_for_reals_and_gs_code_for_fakes(monkeypatch):
    fam = clustering_family()
    ctx = context(fam)
    real, _ = ctx.next_batch()
    want = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    monkeypatch.setattr(fam.nets["c"], "labels", lambda x: want[: x.shape[0]])
    seen = []
    d = fam.nets["d"]
    forward = d.forward
    monkeypatch.setattr(
        d, "forward", lambda x, labels=None, label_fn=None: seen.append(labels) or forward(x, labels)
    )
    fam.schedule(2)
    fam.d_step(ctx)
    gen = torch.Generator().manual_seed(1)  # the codes the D step drew for its fakes
    _, cat, _ = fam.draw_codes(8, gen)
    assert torch.equal(seen[0], torch.cat([want, cat]))


def test_cluster_settings_are_checked_when_the_config_is_resolved():
    with pytest.raises(
        UserError,
        match=r"^family_params\.cluster_steps: needs self_condition: true \(D projects the clusters\)$",
    ):
        preset("mnist-infogan", family_params={"cluster_steps": 5}).resolved()
