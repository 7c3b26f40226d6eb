"""Presets for any data: the network sized from the image size, refusals that say what to do."""

import argparse
import json

import pytest
from pydantic import ValidationError

from gan_core.errors import UserError
from training.config import TrainConfig, preset
from training.presets import PRESETS, read
from training.sizing import fit_to_data


@pytest.mark.parametrize("size,latent", [(28, 64), (32, 64), (64, 128)])
def test_data_presets_take_the_size_rule(size, latent):
    cfg = fit_to_data(preset("cdcgan"), (3, size, size), labelled=True)
    assert cfg.arch_params == {"g_width": 32, "d_width": 32, "d_hidden": 256} and cfg.latent_dim == latent
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
    assert fit_to_data(preset("gan"), (3, 48, 40), labelled=True).arch == "mlp"  # the MLP takes any size


@pytest.mark.parametrize("name,shape", [("dcgan", (3, 48, 40)), ("stylegan", (3, 48, 48))])
def test_sizes_the_network_cannot_build_are_refused_with_the_fix(name, shape):
    with pytest.raises(UserError) as e:
        fit_to_data(preset(name), shape, labelled=True, source="photos")
    assert str(e.value) == (
        f"photos: images are {shape[1]}x{shape[2]}, {name} builds square 28, 32 or 64 px images; "
        "pass --image-size 28, 32 or 64 (--fit crop or stretch)"
    )


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64)])
def test_stylegan_preset_keeps_the_mnist_recipe_and_builds_from_the_data(shape):
    import torch

    from training.families.base import DataInfo
    from training.families.stylegan import StyleGANFamily

    cfg = fit_to_data(preset("stylegan"), shape, labelled=True)
    assert {k: getattr(cfg, k) for k in PRESETS["mnist-stylegan"]} == {
        **PRESETS["mnist-stylegan"],
        "family_params": {"r1_gamma": 0.5},  # R1 and the rates measured on colour data
        "lr_g": 0.006,
        "lr_d": 0.006,
    }
    assert cfg.size_from_data and not preset("mnist-stylegan").size_from_data
    fam = StyleGANFamily(cfg.resolved(), DataInfo(shape, 4, ("a", "b", "c", "d")))
    g = fam.build_nets()["g"]
    noise = [torch.randn(2, *s) for s in fam.noise_shapes]
    assert g(torch.randn(2, cfg.latent_dim), torch.tensor([0, 3]), noise).shape == (2, *shape)


def test_a_config_that_says_augment_is_read_as_diffaugment(tmp_path):
    """`augment`, the field's name before it was `diffaugment`, in a config (a checkpoint's JSON, a preset
    file, an override) is read as `diffaugment`; a config giving both is refused."""
    old = TrainConfig.model_validate_json('{"name": "t", "augment": "translation, color"}')
    assert (
        old
        == TrainConfig(name="t", diffaugment="translation,color")
        == TrainConfig(name="t", augment="translation,color")
    )
    assert (
        "augment" not in old.model_dump()
        and json.loads(old.model_dump_json())["diffaugment"] == "translation,color"
    )
    mine = tmp_path / "old.yaml"
    mine.write_text("# written before the rename\narch: dcgan\naugment: cutout\n")
    assert read(mine) == {"arch": "dcgan", "diffaugment": "cutout"}
    assert preset(str(mine)).diffaugment == "cutout"
    assert preset("mnist-cdcgan", augment="color").diffaugment == "color"
    with pytest.raises(ValidationError, match="augment: the old name of diffaugment; give only diffaugment"):
        TrainConfig(name="t", augment="color", diffaugment="color")


def test_a_checkpoint_whose_config_says_augment_loads_and_resumes(tiny_checkpoint, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from training.checkpoint import load_checkpoint

    src = tiny_checkpoint("mnist-cdcgan")
    with safe_open(src, "pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    assert config.pop("diffaugment") == ""  # what a checkpoint holds now
    (tmp_path / "run").mkdir()
    old = tmp_path / "run" / src.name
    save_file(load_file(src), old, metadata={**meta, "config": json.dumps({**config, "augment": "color"})})
    ck = load_checkpoint(old)
    assert ck.config.diffaugment == "color"
    again = ck.config.model_copy(update={"steps": ck.config.steps + 1})
    assert again.model_differences(ck.config) == []  # resumable
    assert ck.config.model_copy(update={"diffaugment": ""}).model_differences(ck.config) == [
        "diffaugment: checkpoint has 'color', this run asks ''"
    ]


def test_set_with_the_old_name_sets_diffaugment():
    from training.train_cmd import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    for name in ("augment", "diffaugment"):
        args = p.parse_args(["--preset", "mnist-cdcgan", "--set", f"{name}=color,cutout"])
        assert config_from_args(args).diffaugment == "color,cutout"
