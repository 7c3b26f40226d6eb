import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import family_presets, preset_family
from training.config import TrainConfig
from training.registry import LOSSES, get_loss


def test_all_losses_registered():
    get_loss("ns")
    assert {"minimax", "ns", "lsgan", "wgan", "wgan-gp", "hinge"} <= set(LOSSES)
    with pytest.raises(
        KeyError, match="unknown loss 'nope'; known: hinge, lsgan, minimax, ns, wgan, wgan-gp"
    ):
        get_loss("nope")


def test_loss_values_at_known_logits():
    r, f = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    sp = torch.nn.functional.softplus
    ns, mm = get_loss("ns")(), get_loss("minimax")()
    assert torch.allclose(ns.d_loss(r, f), sp(-r).mean() + sp(f).mean())
    assert torch.allclose(ns.g_loss(f), sp(-f).mean())
    assert torch.allclose(mm.g_loss(f), torch.log(1 - torch.sigmoid(f)).mean())
    ls = get_loss("lsgan")()
    assert torch.allclose(ls.d_loss(r, f), torch.tensor(0.5 * ((1 + 1) / 2 + (1 + 1) / 2)))
    hinge = get_loss("hinge")()
    assert hinge.d_loss(r, f).item() == pytest.approx((0 + 1) / 2 + (0 + 2) / 2)
    w = get_loss("wgan")()
    assert w.d_loss(r, f).item() == pytest.approx(0.0 - 1.0)


def test_wgan_clips_critic_weights():
    d = nn.Linear(4, 1)
    nn.init.constant_(d.weight, 0.5)
    get_loss("wgan")(clip=0.01).after_d_step(d)
    assert d.weight.abs().max().item() == pytest.approx(0.01)


def test_gradient_penalty_is_per_sample_norm():
    # D(x) = sum(w * x) has gradient w for every sample: penalty = lambda * (|w| - 1)^2.
    class Lin(nn.Module):
        def forward(self, x, labels=None):
            return (x * 3.0).flatten(1).sum(1)

    x = torch.randn(5, 1, 2, 2)
    pen = get_loss("wgan-gp")(gp_lambda=10.0).penalty(Lin(), x, torch.randn_like(x), None)
    # gradient is 3 everywhere over 4 pixels: norm 6
    assert pen.item() == pytest.approx(10.0 * (6.0 - 1.0) ** 2, rel=1e-5)


def test_r1_penalty_is_the_mean_squared_gradient_norm_on_the_reals():
    """R1 = E|grad_x D(x)|^2 on the images given, with D's conditioning passed through."""
    from training.families.terms import r1_penalty

    seen = []

    class Lin(nn.Module):
        def forward(self, x, labels=None):
            seen.append(labels)
            return (x * 3.0).flatten(1).sum(1) + x.pow(2).flatten(1).sum(1) * 0.5

    x = torch.randn(5, 1, 2, 2)
    labels = torch.arange(5)
    # grad = 3 + x per pixel: |grad|^2 summed over the 4 pixels, averaged over the 5 images
    expected = (3.0 + x).pow(2).flatten(1).sum(1).mean().item()
    pen = r1_penalty(Lin(), x, labels)
    assert pen.item() == pytest.approx(expected, rel=1e-5)
    assert seen[-1] is labels and not x.requires_grad  # the caller's batch is left as it was
    pen.backward()  # differentiable: D's weights get a gradient through it (create_graph)


@pytest.mark.parametrize(
    "loss,n_critic,opt,lr,sn",
    [
        ("wgan", 5, "rmsprop", 5e-5, False),
        ("wgan-gp", 5, "adam", 1e-4, False),
        ("hinge", 1, "adam", 2e-4, True),
        ("ns", 1, "adam", 2e-4, False),
    ],
)
def test_paper_defaults_resolve(loss, n_critic, opt, lr, sn):
    cfg = TrainConfig(name="x", loss=loss).resolved()
    assert (cfg.n_critic, cfg.optimizer, cfg.lr_d, cfg.spectral_norm) == (n_critic, opt, lr, sn)
    if loss == "wgan-gp":
        assert cfg.betas == (0.0, 0.9)


def test_the_wgan_critics_log_their_wasserstein_estimate_and_the_others_nothing_more(mnist_small, tmp_path):
    """WGAN and WGAN-GP D steps log E[D(real)] - E[D(fake)] (plotted in curves.png beside FID); no other loss adds keys."""
    from gan_core.datasets import load_dataset
    from tests.conftest import tiny_config
    from training.runlog import read_metrics
    from training.trainer import Trainer

    real, fake = torch.tensor([[2.0], [4.0]]), torch.tensor([[-1.0], [1.0]])
    assert get_loss("wgan")().logged(real, fake) == {"wasserstein": 3.0}
    assert get_loss("wgan-gp")().logged(real, fake) == {"wasserstein": 3.0}
    assert all(get_loss(n)().logged(real, fake) == {} for n in ("ns", "minimax", "lsgan", "hinge"))
    cfg = tiny_config("mnist-wgan-gp", tmp_path, log_every=1)
    Trainer(cfg, load_dataset(mnist_small), progress=False).train()
    recs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "d_loss" in r]
    assert recs and all(np.isfinite(r["wasserstein"]) for r in recs)
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize("every", [1, 4])
def test_the_gradient_penalty_is_lazy_every_k_critic_steps_and_weighted_k_times(mnist_small, tmp_path, every):
    """gp_every=k: the penalty on critic steps k apart over the run (their index counts across G steps), times k."""
    from gan_core.datasets import load_dataset
    from tests.conftest import tiny_config
    from training.losses import WGANGPLoss
    from training.trainer import Trainer

    cfg = tiny_config("mnist-wgan-gp", tmp_path, n_critic=5, gp_every=every).model_copy(update={"steps": 4})
    trainer = Trainer(cfg, load_dataset(mnist_small), progress=False)
    calls, applied = [], []
    family_penalty = type(trainer.family).penalty

    def counting(self, ctx, D, real, fake, labels):
        calls.append(ctx.step * 5 + ctx.extra["repeat"])
        pen = family_penalty(self, ctx, D, real, fake, labels)
        applied.append(None if pen is None else pen.item())
        return pen

    real_penalty = WGANGPLoss.penalty
    raw = []

    def raw_penalty(self, D, real, fake, labels):
        out = real_penalty(self, D, real, fake, labels)
        raw.append(out.item())
        return out

    import unittest.mock as mock

    with (
        mock.patch.object(type(trainer.family), "penalty", counting),
        mock.patch.object(WGANGPLoss, "penalty", raw_penalty),
    ):
        trainer.train()
    assert calls == list(range(20))  # 4 G steps x 5 critic steps, indexed across the run
    due = [i for i in calls if i % every == 0]
    assert [i for i, a in zip(calls, applied, strict=True) if a is not None] == due
    assert [a for a in applied if a is not None] == pytest.approx([every * r for r in raw])


@pytest.mark.parametrize("family", sorted(family_presets()))
def test_gp_every_is_refused_where_no_lazily_spaced_penalty_would_read_it(family):
    """Families whose D step adds the loss's penalty through Family.penalty space it out with a penalised loss;
    every other run (another loss, or a family with its own D step) refuses gp_every instead of ignoring it."""
    from gan_core.errors import UserError
    from training.config import penalised_losses, preset

    name = family_presets()[family]
    lazy = preset_family(name).lazy_penalty
    assert penalised_losses() == ["wgan-gp"]
    if lazy:
        assert preset(name, loss="wgan-gp", gp_every=3).resolved().gp_every == 3
    # a lazy family with a penalty-free loss and no R1; a family with its own D step: its own loss
    loss = {"loss": "hinge", "r1_gamma": 0.0} if lazy else {}
    cfg = preset(name, gp_every=3, **loss)
    with pytest.raises(UserError) as e:
        cfg.resolved()
    head, where = str(e.value).split(" in the families ")
    assert head.startswith(f"gp_every: 3 would be ignored: this run ({cfg.family} family, ")
    assert head.endswith("spaces out no gradient penalty; gp_every applies to the wgan-gp loss or r1_gamma")
    assert (cfg.family in where.split(", ")) == lazy
    assert preset(name, **loss, gp_every=1).resolved().gp_every == 1  # the default is never refused


@pytest.mark.parametrize("every", [1, 2])
def test_r1_gamma_adds_the_r1_term_to_d_steps_lazily(mnist_small, tmp_path, every):
    """r1_gamma: D's penalty is gamma / 2 x R1 on the reals, on every gp_every-th D step, times gp_every; a loss
    without a penalty of its own (hinge) takes it alone."""
    import unittest.mock as mock

    import training.families.gan as gan_module
    from gan_core.datasets import load_dataset
    from tests.conftest import tiny_config
    from training.trainer import Trainer

    cfg = tiny_config("mnist-cdcgan", tmp_path, r1_gamma=4.0, gp_every=every).model_copy(update={"steps": 4})
    trainer = Trainer(cfg, load_dataset(mnist_small), progress=False)
    raw, applied = [], []
    real_r1, family_penalty = gan_module.r1_penalty, type(trainer.family).penalty

    def recording_r1(D, real, labels):
        out = real_r1(D, real, labels)
        raw.append(out.item())
        return out

    def recording(self, ctx, D, real, fake, labels):
        pen = family_penalty(self, ctx, D, real, fake, labels)
        applied.append(None if pen is None else pen.item())
        return pen

    with (
        mock.patch.object(gan_module, "r1_penalty", recording_r1),
        mock.patch.object(type(trainer.family), "penalty", recording),
    ):
        trainer.train()
    assert [a is not None for a in applied] == [i % every == 0 for i in range(4)]
    assert len(raw) == 4 // every and all(r > 0 for r in raw)
    assert [a for a in applied if a is not None] == pytest.approx([every * 4.0 / 2 * r for r in raw])


@pytest.mark.parametrize("family", sorted(family_presets()))
def test_r1_gamma_is_refused_where_no_d_step_reads_it(family):
    """Families whose D steps go through Family.penalty take r1_gamma (and space it with gp_every, whatever
    the loss); the others refuse it with one line naming the families that take it (StyleGAN: its own R1)."""
    from gan_core.errors import UserError
    from training.config import preset

    name = family_presets()[family]
    if preset_family(name).lazy_penalty:
        cfg = preset(name, loss="hinge", r1_gamma=0.5, gp_every=4).resolved()
        assert (cfg.r1_gamma, cfg.gp_every) == (0.5, 4)
        return
    with pytest.raises(UserError) as e:
        preset(name, r1_gamma=0.5).resolved()
    msg = str(e.value)
    assert msg.startswith(f"r1_gamma: the {preset(name).family} family's D steps take no R1 term")
    assert "\n" not in msg and "gan" in msg.split("families that do: ")[1].split(", ")
    assert ("family_params.r1_gamma" in msg) == (family == "stylegan")
