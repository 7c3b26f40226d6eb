"""Self-conditioned GAN: the clustering phase, then G and D conditioned on the clusters of the reals
(never on their labels), the cluster input through the card, and the refusal of a conditional run."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gan_core.errors import UserError
from training.config import preset
from training.families.base import DataInfo, StepContext
from training.families.selfcond import SelfConditionedFamily

TINY = {"g_width": 8, "d_width": 8, "d_hidden": 16}
CLUSTERS = {"cluster_steps": 2, "cluster_width": 4, "cluster_heads": 3}


def family(loss: str = "hinge", **params) -> SelfConditionedFamily:
    cfg = preset(
        "mnist-sngan", family="selfcond", loss=loss, arch_params=TINY, batch_size=8, diversity_weight=0.25,
        family_params={**CLUSTERS, **params},
    ).resolved()  # fmt: skip
    fam = SelfConditionedFamily(cfg, DataInfo((1, 28, 28), 10, tuple("0123456789")))
    torch.manual_seed(0)
    fam.build()
    return fam


def context(fam: SelfConditionedFamily) -> StepContext:
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    labels = torch.full((8,), 7, dtype=torch.int64)  # the data's labels: never what D sees
    return StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets,
                       lambda: (real, labels), contextlib.nullcontext)  # fmt: skip


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_the_clusterer_trains_alone_then_is_frozen_while_g_and_d_train():
    fam = family()
    c, ctx = fam.nets["c"], context(fam)
    fam.schedule(1)
    assert [p.name for p in fam.phases()] == ["cluster"]
    assert fam.eval_caveat() == "clustering the reals until step 2: G has not trained yet"
    g0, d0, c0 = params(fam.nets["g"]), params(fam.nets["d"]), params(c)
    logs = fam.phases()[0].run(ctx)
    assert set(logs) == {"iic"} and c.updates.item() == 1
    assert changed(c0, c) == set(c0) and not changed(g0, fam.nets["g"]) and not changed(d0, fam.nets["d"])
    fam.schedule(2)
    assert [p.name for p in fam.phases()] == ["d", "g"] and fam.eval_caveat() is None
    c1 = params(c)
    for phase in fam.phases():
        phase.run(ctx)
    assert not changed(c1, c)
    assert changed(g0, fam.nets["g"]) == set(g0) and changed(d0, fam.nets["d"])


def test_d_projects_the_clusters_of_the_reals_for_both_halves_and_g_draws_uniform_paired_clusters(
    monkeypatch,
):
    fam = family()
    ctx = context(fam)
    want = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    monkeypatch.setattr(fam.nets["c"], "labels", lambda x: want[: x.shape[0]])
    seen_d, seen_g = [], []
    d, g = fam.nets["d"], fam.nets["g"]
    d_fwd, g_fwd = d.forward, g.forward
    monkeypatch.setattr(d, "forward", lambda x, labels=None: seen_d.append(labels) or d_fwd(x, labels))
    monkeypatch.setattr(g, "forward", lambda z, labels=None: seen_g.append(labels) or g_fwd(z, labels))
    fam.schedule(2)
    fam.d_step(ctx)
    assert torch.equal(seen_d[0], torch.cat([want, want])) and torch.equal(seen_g[0], want)
    z, clusters = fam.g_inputs(ctx)
    assert z.shape == (8, 64) and clusters.min() >= 0 and clusters.max() < 10
    assert torch.equal(clusters[:4], clusters[4:])  # mode seeking: pairs (i, i + n/2) share a cluster


def test_the_card_declares_z_and_the_cluster_and_the_grid_has_a_row_per_cluster():
    fam = family(clusters=4, cluster_name="group")
    z, k = fam.card_inputs()
    assert (z.name, z.kind, z.shape) == ("z", "latent", [64])
    assert (k.name, k.kind, k.num_choices) == ("group", "categorical", 4)
    pixels, ncols = fam.grid(fam.nets["g"].eval(), torch.device("cpu"))
    assert ncols == 10 and pixels.shape == (40, 28, 28, 1) and pixels.dtype.name == "uint8"
    assert fam.card_variant() == "selfcond-hinge" and fam.card_arch_params()["clusters"] == 4
    z, k = fam.recalibration_inputs(1, 6, torch.Generator().manual_seed(0))
    assert z.shape == (6, 64) and k.tolist() == [2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("loss", ["ns", "wgan"])
def test_any_registered_loss_brings_its_papers_optimiser(loss):
    cfg = family(loss).cfg
    assert (cfg.optimizer, cfg.n_critic) == {"ns": ("adam", 1), "wgan": ("rmsprop", 5)}[loss]


def test_a_conditional_run_is_refused_in_one_line():
    with pytest.raises(
        UserError,
        match=r"^selfcond reads no labels: conditional must be false \(the clusters replace them\)$",
    ):
        preset("mnist-sngan", family="selfcond", conditional=True).resolved()
    with pytest.raises(UserError, match=r"^family_params\.cluster_steps: "):
        preset("mnist-sngan", family="selfcond", family_params={"cluster_steps": 0}).resolved()
