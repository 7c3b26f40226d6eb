"""BEGAN: the equilibrium controller k_t, its convergence measure, k_t in the checkpoint (exact resume),
and both logged and plotted."""

from __future__ import annotations

import pytest
import torch

from gan_core.datasets import load_dataset
from gan_core.errors import UserError
from training.checkpoint import load_checkpoint
from training.config import preset
from training.families.began import k_update, latent_constraint
from training.runlog import extra_keys, plot_curves, read_metrics
from training.trainer import Trainer

TINY = {"g_width": 4, "d_width": 4, "code_dim": 8}


def test_k_update_is_the_papers_proportional_control_clamped_to_0_1():
    k, m = k_update(0.2, real_error=0.3, fake_error=0.1, gamma=0.5, lambda_k=0.01)
    assert k == pytest.approx(0.2 + 0.01 * (0.15 - 0.1)) and m == pytest.approx(0.3 + 0.05)
    k, m = k_update(0.2, real_error=0.3, fake_error=0.4, gamma=0.5, lambda_k=0.01)  # fakes too hard: k falls
    assert k == pytest.approx(0.2 - 0.01 * 0.25) and m == pytest.approx(0.3 + 0.25)
    assert k_update(0.0, 0.1, 5.0, 0.5, 0.01)[0] == 0.0  # clamped below ...
    assert k_update(0.999, 9.0, 0.0, 0.5, 0.01)[0] == 1.0  # ... and above


def test_k_max_lowers_the_upper_clamp_only():
    assert k_update(0.59, 9.0, 0.0, 0.5, 0.01, k_max=0.6)[0] == 0.6  # would reach 0.635
    below, _ = k_update(0.3, 0.3, 0.1, 0.5, 0.01, k_max=0.6)  # under the cap: the paper's step
    assert below == pytest.approx(0.3005)
    falling, _ = k_update(0.6, 0.1, 5.0, 0.5, 0.01, k_max=0.6)  # fakes too hard: falls from the cap as before
    assert falling == pytest.approx(0.6 - 0.01 * 4.95)
    with pytest.raises(
        UserError,
        match=r"^family_params\.k_max: Input should be less than or equal to 1 \(got 1\.5; allowed: number > 0, <= 1\)$",
    ):
        preset("mnist-began", family_params={"k_max": 1.5}).resolved()
    with pytest.raises(UserError, match=r"^family_params\.k_max: Input should be greater than 0 \(got 0;"):
        preset("mnist-began", family_params={"k_max": 0}).resolved()


@pytest.mark.parametrize(("norm", "expected"), [(1, [0.5, 0.25]), (2, [0.25, 0.125])])
def test_the_energy_is_the_mean_error_to_the_power_eta(mnist_small, tmp_path, norm, expected):
    cfg = preset("mnist-began", out=str(tmp_path), steps=1, batch_size=8, arch_params=TINY, threads=1,
                 eval_every=0, family_params={"norm": norm})  # fmt: skip
    family = Trainer(cfg, load_dataset(mnist_small), progress=False).family
    x = torch.zeros(2, 1, 2, 2)
    recon = torch.tensor([[0.5, -0.5, 0.5, -0.5], [0.5, 0.0, 0.0, -0.5]]).view(2, 1, 2, 2)
    assert family.error(recon, x).tolist() == pytest.approx(expected)
    with pytest.raises(
        UserError, match=r"^family_params\.norm: not one of the choices \(got 3; allowed: 1 or 2\)$"
    ):
        preset("mnist-began", family_params={"norm": 3}).resolved()


@pytest.mark.parametrize(("activation", "layer"), [(None, torch.nn.ELU), ("lrelu", torch.nn.LeakyReLU)])
def test_the_autoencoders_activation_is_the_familys_unless_arch_params_name_one(
    mnist_small, tmp_path, activation, layer
):
    arch = {"generator": "mlp", "g_hidden": [16], "autoencoder": "mlp", "d_hidden": 16, "code_dim": 8}
    if activation:
        arch["d_activation"] = activation
    cfg = preset("mnist-began", out=str(tmp_path), steps=1, batch_size=8, arch_params=arch, threads=1,
                 eval_every=0, latent_dim=8)  # fmt: skip
    family = Trainer(cfg, load_dataset(mnist_small), progress=False).family
    acts = {type(m) for m in family.nets["d"].modules() if isinstance(m, (torch.nn.ELU, torch.nn.LeakyReLU))}
    assert acts == {layer}
    name = {torch.nn.ELU: "elu", torch.nn.LeakyReLU: "lrelu"}[layer]
    assert family.card_arch_params()["d_activation"] == name  # the card names the resolved one
    with pytest.raises(
        UserError,
        match=r"^arch_params\.d_activation: not one of the choices \(got 'tanh'; allowed: 'lrelu', 'elu', 'relu' or null\)$",
    ):
        preset("mnist-began", arch_params={"d_activation": "tanh"}).resolved()


def test_latent_constraint_is_the_mean_distance_from_z_to_ds_code():
    z = torch.zeros(2, 3)
    code = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    assert latent_constraint(z, code).item() == pytest.approx((5.0 + 1.0) / 2)
    assert latent_constraint(code, code).item() == 0.0


def test_the_latent_constraint_joins_ds_loss_and_is_logged(mnist_small, tmp_path):
    ds = load_dataset(mnist_small)
    arch = {**TINY, "code_dim": 16}
    params = {"gamma": 0.5, "lambda_k": 0.001, "latent_constraint": 0.25}
    cfg = preset("mnist-began", out=str(tmp_path / "cs"), steps=1, batch_size=8, arch_params=arch, threads=1,
                 eval_every=0, log_every=1, latent_dim=16, family_params=params)  # fmt: skip
    Trainer(cfg, ds, progress=False).train()
    (rec,) = read_metrics(tmp_path / "cs" / "metrics.jsonl")
    assert rec["latent_gap"] > 0  # k_0 = 0: D's first loss is L(x) + alpha ||z - Enc(G(z))||
    assert rec["d_loss"] == pytest.approx(rec["recon_real"] + 0.25 * rec["latent_gap"], rel=1e-5)
    off = preset("mnist-began", out=str(tmp_path / "off"), steps=1, batch_size=8, arch_params=arch, threads=1,
                 eval_every=0, log_every=1, latent_dim=16, family_params={**params, "latent_constraint": 0})  # fmt: skip
    Trainer(off, ds, progress=False).train()
    (rec,) = read_metrics(tmp_path / "off" / "metrics.jsonl")
    assert "latent_gap" not in rec and rec["d_loss"] == pytest.approx(rec["recon_real"], rel=1e-5)
    with pytest.raises(UserError, match=r"^family_params: latent_constraint compares D's code with z, so "
                       r"arch_params code_dim \(8\) must equal latent_dim \(64\)"):  # fmt: skip
        Trainer(preset("mnist-began", out=str(tmp_path / "bad"), arch_params=TINY, family_params=params), ds,
                progress=False)  # fmt: skip
    with pytest.raises(UserError, match=r"^family_params\.latent_constraint: Input should be greater than"):
        preset("mnist-began", family_params={"latent_constraint": -1}).resolved()


@pytest.mark.parametrize(("share", "g_calls"), [(False, 2), (True, 1)])
def test_share_fakes_trains_g_on_the_fakes_its_d_step_scored(mnist_small, tmp_path, share, g_calls):
    params = {"gamma": 1.5, "lambda_k": 0.003, "share_fakes": share}
    cfg = preset("mnist-began", out=str(tmp_path), steps=3, batch_size=8, arch_params=TINY, threads=1,
                 eval_every=0, log_every=1, family_params=params)  # fmt: skip
    trainer = Trainer(cfg, load_dataset(mnist_small), progress=False)
    g_batches, d_batches = [], []
    trainer.family.nets["g"].register_forward_hook(
        lambda m, args, out: g_batches.append(out.detach().clone())
    )
    trainer.family.nets["d"].register_forward_hook(
        lambda m, args, out: d_batches.append(args[0].detach().clone())
    )
    trainer.train()
    assert len(g_batches) == 3 * g_calls  # one G forward per step when shared, else one per phase
    assert len(d_batches) == 3 * 2  # D scores reals + fakes, then the G step's fakes
    for step in range(3):
        d_fakes, g_fakes = d_batches[2 * step][8:], d_batches[2 * step + 1]
        assert torch.equal(d_fakes, g_fakes) == share  # the very images D just scored
    assert all(r["recon_fake"] > 0 and 0 <= r["k_t"] <= 1 for r in read_metrics(tmp_path / "metrics.jsonl"))


def test_share_fakes_refuses_several_d_steps_per_g_step(mnist_small, tmp_path):
    cfg = preset(
        "mnist-began", out=str(tmp_path), arch_params=TINY, n_critic=2, family_params={"share_fakes": True}
    )
    with pytest.raises(
        UserError, match=r"^family_params: share_fakes needs one D step per G step, got n_critic=2"
    ):
        Trainer(cfg, load_dataset(mnist_small), progress=False)


def _cfg(out, steps):
    return preset("mnist-began", out=str(out), steps=steps, batch_size=8, arch_params=TINY, threads=1,
                  eval_every=0, log_every=1, ckpt_every=2,
                  family_params={"gamma": 0.5, "lambda_k": 0.5})  # fmt: skip


def test_k_t_is_checkpointed_resumes_exactly_and_is_logged_and_plotted(mnist_small, tmp_path):
    paper = preset("mnist-began", family_params={}).resolved().family_params
    paper_keys = {"latent_constraint": 0.0, "share_fakes": False, "norm": 1}
    assert paper == {"gamma": 0.5, "lambda_k": 0.001, "k_max": 1.0, **paper_keys}
    scaled = {"gamma": 1.5, "lambda_k": 0.003, "k_max": 0.7, **paper_keys, "latent_constraint": 0.05}
    assert preset("mnist-began").resolved().family_params == scaled
    with pytest.raises(
        UserError, match=r"^family_params\.gamma: Input should be less than or equal to 4 \(got 5;"
    ):
        preset("mnist-began", family_params={"gamma": 5}).resolved()
    with pytest.raises(UserError, match=r"^family_params\.gamma: Input should be greater than 0 \(got 0;"):
        preset("mnist-began", family_params={"gamma": 0}).resolved()
    ds = load_dataset(mnist_small)
    straight = Trainer(_cfg(tmp_path / "a", 4), ds, progress=False)
    res = straight.train()
    recs = read_metrics(tmp_path / "a" / "metrics.jsonl")
    ks = [r["k_t"] for r in recs]
    assert len(ks) == 4 and 0.0 <= min(ks) and max(ks) <= 1.0 and max(ks) > 0  # a large lambda_k moves it
    assert all(r["m_global"] > 0 for r in recs)
    assert straight.family.k == ks[-1]
    ck = load_checkpoint(res.checkpoint)
    assert ck.tensors["family.k"].dtype == torch.float64 and float(ck.tensors["family.k"][0]) == ks[-1]
    Trainer(_cfg(tmp_path / "b", 2), ds, progress=False).train()
    resumed = Trainer(_cfg(tmp_path / "b", 4), ds, resume=True, progress=False)
    assert resumed.family.k == ks[1]
    res_b = resumed.train()
    a, b = ck.tensors, load_checkpoint(res_b.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert extra_keys(recs) == ["k_t", "m_global", "recon_real", "recon_fake"]
    assert all(r["recon_real"] > 0 and r["recon_fake"] > 0 for r in recs)  # the errors k_t compares
    assert plot_curves(tmp_path / "a" / "metrics.jsonl", tmp_path / "curves.png") == tmp_path / "curves.png"
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000  # the run's own plot, written at the end


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_decoder_generator_mirrors_the_autoencoders_decoder_without_batchnorm(shape):
    from training.nets.autoencoder import AutoencoderDiscriminator, DecoderGenerator

    g = DecoderGenerator(8, 10, True, shape, width=4, embed_dim=3)
    d = AutoencoderDiscriminator(shape, 10, False, width=4, code_dim=8, activation="elu")
    convs = [m for m in g.up if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (c.in_channels, c.out_channels) for c in d.decoder if isinstance(c, torch.nn.ConvTranspose2d)
    ]  # the decoder's stages, channel for channel
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in g.modules())
    assert sum(isinstance(m, torch.nn.ELU) for m in g.modules()) == len(convs)
    z, y = torch.randn(5, 8), torch.arange(5)
    out = g(z, y)
    assert out.shape == (5, *shape) and out.abs().max() <= 1  # tanh: the data's range
    assert not torch.equal(out, g(z, y.flip(0)))  # the label reaches the image


def test_began_with_the_decoder_generator_trains_and_exports_with_parity(mnist_small, tmp_path):
    from export import export_checkpoint
    from training.checkpoint import build_generator, load_checkpoint

    arch = {"generator": "decoder", "g_width": 4, "d_width": 4, "code_dim": 8}
    cfg = preset("mnist-began", out=str(tmp_path / "run"), steps=3, batch_size=8, arch_params=arch,
                 threads=1, eval_every=0, log_every=1, latent_dim=8)  # fmt: skip
    result = Trainer(cfg, load_dataset(mnist_small), progress=False).train()
    assert type(build_generator(load_checkpoint(result.checkpoint))).__name__ == "DecoderGenerator"
    card = export_checkpoint(result.checkpoint, tmp_path / "bg.onnx")
    assert card.arch == "decoder" and card.arch_params["generator"] == "decoder"
    assert card.export.parity_batches == [1, 7, 256] and card.export.parity_max_abs_diff <= 1
