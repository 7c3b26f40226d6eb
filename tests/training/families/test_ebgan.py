"""EBGAN: the pulling-away term, the energy and margin losses, and a few real training steps."""

from __future__ import annotations

import json

import pytest
import torch

from gan_core.datasets import load_dataset
from gan_core.errors import UserError
from training.config import preset
from training.families.ebgan import margin_loss, pulling_away
from training.nets.autoencoder import AutoencoderDiscriminator, MLPAutoencoderDiscriminator
from training.trainer import Trainer

TINY = {"g_width": 4, "d_width": 4, "code_dim": 8}


def test_pulling_away_is_the_mean_squared_cosine_of_distinct_pairs():
    same = torch.tensor([[1.0, 2.0], [2.0, 4.0], [-3.0, -6.0]])  # one direction, any scale or sign
    assert pulling_away(same).item() == pytest.approx(1.0)
    assert pulling_away(torch.eye(4) * torch.tensor([1.0, 5.0, 2.0, 3.0])).item() == pytest.approx(
        0.0, abs=1e-7
    )
    codes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])  # cosines: 1/sqrt2, 0, 1/sqrt2
    assert pulling_away(codes).item() == pytest.approx((0.5 + 0.0 + 0.5) * 2 / 6)
    assert pulling_away(codes.view(3, 1, 2, 1)).item() == pytest.approx(
        pulling_away(codes).item()
    )  # any shape
    x = torch.randn(6, 5, requires_grad=True)
    pulling_away(x).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("conditional", [False, True])
def test_autoencoder_discriminator_reconstructs_at_the_image_size(shape, conditional):
    d = AutoencoderDiscriminator(shape, 10, conditional, width=4, code_dim=6)
    y = torch.arange(3) if conditional else None
    recon, code = d(torch.randn(3, *shape), y)
    assert recon.shape == (3, *shape) and code.shape == (3, 6)


def test_margin_loss_pushes_fake_energy_up_to_the_margin_only():
    real, fake = torch.tensor([0.2, 0.4]), torch.tensor([0.5, 3.0], requires_grad=True)
    loss = margin_loss(real, fake, 1.0)
    assert loss.item() == pytest.approx(0.3 + (0.5 + 0.0) / 2)  # mean real + mean max(0, m - fake)
    loss.backward()
    assert fake.grad.tolist() == [-0.5, 0.0]  # the fake beyond the margin gets no push
    cfg = preset("mnist-ebgan").resolved()
    assert cfg.family_params == {"margin": 1.0, "pt_weight": 0.1}
    assert (cfg.lr_g, cfg.lr_d, cfg.betas) == (5e-4, 5e-4, (0.5, 0.999))  # the preset's rates
    unset = preset("mnist-ebgan").model_copy(update={"lr_g": None, "lr_d": None}).resolved()
    assert (unset.lr_g, unset.lr_d) == (2e-4, 2e-4)  # the family's default


def test_trains_and_logs_its_terms(mnist_small, tmp_path):
    ds = load_dataset(mnist_small)
    cfg = preset("mnist-ebgan", out=str(tmp_path), steps=3, batch_size=8, arch_params=TINY, threads=1,
                 eval_every=0, log_every=1)  # fmt: skip
    Trainer(cfg, ds, progress=False).train()
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"d_loss", "g_loss", "energy_real", "energy_fake", "pulling_away"} <= set(rec)
    assert 0.0 <= rec["pulling_away"] <= 1.0
    with pytest.raises(
        UserError,
        match=r"^family_params\.gamma: not a setting of the ebgan family \(got 0\.5; allowed: margin, pt_weight\)$",
    ):
        preset("mnist-ebgan", family_params={"gamma": 0.5}).resolved()
    with pytest.raises(
        UserError,
        match=r"^family_params\.margin: Input should be greater than 0 \(got 0; allowed: number > 0\)$",
    ):
        preset("mnist-ebgan", family_params={"margin": 0}).resolved()
    with pytest.raises(
        UserError,
        match=r"^arch_params\.code: not a setting of the ebgan family's networks \(got 8; allowed: generator, ",
    ):
        preset("mnist-ebgan", arch_params={"code": 8}).resolved()


@pytest.mark.parametrize("conditional", [False, True])
def test_fully_connected_autoencoder_reconstructs_and_codes(conditional):
    d = MLPAutoencoderDiscriminator((1, 28, 28), 10, conditional, hidden=16, code_dim=6)
    y = torch.arange(3) if conditional else None
    x = torch.randn(3, 1, 28, 28)
    recon, code = d(x, y)
    assert recon.shape == (3, 1, 28, 28) and code.shape == (3, 6)
    if conditional:  # the label reaches both the encoder and the decoder
        recon2, code2 = d(x, y.flip(0))
        assert not torch.equal(code, code2) and not torch.equal(recon, recon2)


def test_mlp_generator_and_autoencoder_train_and_export_with_parity(mnist_small, tmp_path):
    from export import export_checkpoint
    from training.checkpoint import build_generator, load_checkpoint

    arch = {"generator": "mlp", "g_hidden": [16, 32], "autoencoder": "mlp", "d_hidden": 16, "code_dim": 8}
    cfg = preset("mnist-ebgan", out=str(tmp_path / "run"), steps=3, batch_size=8, arch_params=arch,
                 threads=1, eval_every=0, log_every=1)  # fmt: skip
    result = Trainer(cfg, load_dataset(mnist_small), progress=False).train()
    assert type(build_generator(load_checkpoint(result.checkpoint))).__name__ == "MLPGenerator"
    card = export_checkpoint(result.checkpoint, tmp_path / "eb.onnx")
    assert card.arch_params["generator"] == "mlp" and card.arch_params["autoencoder"] == "mlp"
    assert card.arch == "mlp"  # the card names the generator's network, not the config's default
    assert card.export.parity_batches == [1, 7, 256] and card.export.parity_max_abs_diff <= 1
    with pytest.raises(
        UserError,
        match=r"^arch_params\.generator: not one of the choices \(got 'resnet'; allowed: 'dcgan', 'mlp' or 'decoder'\)$",
    ):
        preset("mnist-ebgan", arch_params={"generator": "resnet"}).resolved()
