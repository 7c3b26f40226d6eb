"""Presets for any data: the network sized from the image size, refusals that say what to do."""

import pytest

from gan_core.errors import UserError
from training.config import PRESETS, fit_to_data, preset


@pytest.mark.parametrize("size,latent", [(28, 64), (32, 64), (64, 128)])
def test_data_presets_take_the_size_rule(size, latent):
    cfg = fit_to_data(preset("cdcgan"), (3, size, size), labelled=True)
    assert cfg.arch_params == {"g_width": 32, "d_width": 32} and cfg.latent_dim == latent
    recipe = {k: v for k, v in PRESETS["mnist-cdcgan"].items() if k not in ("arch_params", "latent_dim")}
    assert {k: getattr(cfg, k) for k in recipe} == recipe  # the mnist-cdcgan recipe otherwise


def test_explicit_sizes_win_and_mnist_presets_are_untouched():
    cfg = fit_to_data(preset("cdcgan", arch_params={"g_width": 8}, latent_dim=16), (3, 64, 64), True)
    assert cfg.arch_params == {"g_width": 8, "d_width": 32} and cfg.latent_dim == 16
    mnist = preset("mnist-cdcgan")
    assert fit_to_data(mnist, (1, 28, 28), True) == mnist and not mnist.size_from_data


def test_refusals_name_the_fix():
    with pytest.raises(UserError) as e:
        fit_to_data(preset("cdcgan"), (3, 32, 32), labelled=False, source="sprites")
    assert str(e.value) == (
        "sprites: has no class labels (a flat folder or an .npz without labels), but preset 'cdcgan' is "
        "conditional; use an unconditional preset (dcgan, gan, wgan-gp) or class subfolders"
    )
    assert fit_to_data(preset("dcgan"), (3, 32, 32), labelled=False).latent_dim == 64
    with pytest.raises(UserError) as e:
        fit_to_data(preset("dcgan"), (3, 48, 40), labelled=True, source="photos")
    assert str(e.value) == (
        "photos: images are 48x40, dcgan builds square 28, 32 or 64 px images; "
        "pass --image-size 28, 32 or 64 (--fit crop or stretch)"
    )
    assert fit_to_data(preset("gan"), (3, 48, 40), labelled=True).arch == "mlp"  # the MLP takes any size
