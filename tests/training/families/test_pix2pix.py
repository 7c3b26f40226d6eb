"""The paired image-to-image family (pix2pix / SRGAN): its presets train at a tiny size with the right
networks and card, the L1-only variant leaves D untouched, filling in keeps the known pixels, resumes
are bit-identical, and a bad setting is one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_core.datasets import ImageDataset, load_dataset
from gan_core.errors import UserError
from tests.conftest import repair_presets, tiny_config
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.families.base import DataInfo
from training.families.pix2pix import Pix2PixFamily
from training.nets.cyclegan import PatchDiscriminator
from training.nets.pix2pix import SRResNet, UNetGenerator, unet_depth
from training.trainer import Trainer

WANT = {  # preset -> (task, scale, mask, input shape [h, w, c] per card input, variant)
    "mnist-sr4": ("upscale", 4, None, [[7, 7, 1]], "pix2pix-ns"),
    "mnist-inpaint": ("restore", 1, "box", [[28, 28, 1], [28, 28, 1]], "pix2pix-ns"),
    "mnist-restore": ("restore", 1, None, [[28, 28, 1]], "pix2pix-ns"),
}


def test_the_repair_presets_are_the_issues():
    assert sorted(WANT) == repair_presets()


@pytest.mark.parametrize("name", sorted(WANT))
def test_each_preset_trains_and_its_card_says_what_the_model_does(name, tiny_checkpoint):
    ck = load_checkpoint(tiny_checkpoint(name))
    task, scale, mask, shapes, variant = WANT[name]
    r = ck.card.repair
    assert (r.task, r.scale, r.mask, r.corruption, r.any_size) == (
        task, scale, mask, preset(name).family_params["corruption"], True
    )  # fmt: skip
    assert [i.shape for i in ck.card.inputs] == shapes and ck.card.variant == variant
    assert tuple(ck.card.image_shape) == (1, 28, 28) and r.multiple == (1 if task == "upscale" else 4)
    g = build_generator(ck)
    feeds = [torch.randint(0, 256, (3, *s), dtype=torch.uint8) for s in shapes]
    out = g(*feeds)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    assert isinstance(g.g, SRResNet if task == "upscale" else UNetGenerator)


def test_the_sr_generator_upscales_by_pixel_shuffle_and_the_unet_sizes_itself():
    assert SRResNet(3, 4, 8, 1)(torch.zeros(2, 3, 8, 5)).shape == (2, 3, 32, 20)
    assert [unet_depth(s, s) for s in (28, 32, 64)] == [2, 3, 4]
    u = UNetGenerator(2, 1, unet_depth(32, 32), 4, 1)
    assert u(torch.zeros(1, 2, 32, 32)).shape == (1, 1, 32, 32)
    assert u(torch.zeros(1, 2, 40, 48)).shape == (1, 1, 40, 48)  # any multiple of 8


def test_d_sn_puts_spectral_norm_on_every_patchgan_conv_instead_of_instance_norm():
    from torch.nn.utils.parametrize import is_parametrized

    plain, sn = (PatchDiscriminator((2, 28, 28), 4, 2, sn=flag) for flag in (False, True))
    convs = [m for m in sn.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(is_parametrized(c) for c in convs)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in sn.net)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in plain.net) == 2
    x = torch.rand(3, 2, 28, 28) * 2 - 1
    assert sn(x).shape == plain(x).shape == (3, 1, 5, 5)


def test_the_l1_only_variant_trains_g_alone(mnist_small, tmp_path):
    cfg = tiny_config("mnist-restore", tmp_path, family_params={"corruption": "old", "adv_weight": 0.0})
    t = Trainer(cfg, load_dataset(mnist_small), progress=False)
    d0 = {k: v.clone() for k, v in t.family.nets["d"].state_dict().items()}
    g0 = {k: v.clone() for k, v in t.family.nets["g"].state_dict().items()}
    assert [p.name for p in t.family.phases()] == ["g"]
    t.train()
    assert all(torch.equal(d0[k], v) for k, v in t.family.nets["d"].state_dict().items())
    assert not all(torch.equal(g0[k], v) for k, v in t.family.nets["g"].state_dict().items())
    assert t.card().variant == "pix2pix-l1" and t.card().repair.corruption == "blur:0.8+noise:0.1+jpeg:40"


def test_filling_in_keeps_the_known_pixels_and_ignores_what_the_hole_held(tiny_checkpoint):
    g = build_generator(load_checkpoint(tiny_checkpoint("mnist-inpaint")))
    img = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    mask = torch.zeros(2, 28, 28, 1, dtype=torch.uint8)
    mask[:, 7:21, 7:21] = 255
    out = torch.clamp(torch.round((g(img, mask) + 1) * 127.5), 0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    keep = mask == 0
    assert torch.equal(out[keep], img[keep])
    other = img.clone()
    other[~keep] = 0
    assert torch.equal(g(other, mask), g(img, mask))


def test_resume_is_bit_identical(mnist_small, tmp_path):
    ds = load_dataset(mnist_small)
    small = ImageDataset(ds.images[:200].copy(), ds.labels[:200].copy(), ds.class_names, "s", "s")

    def cfg(out, steps):
        return tiny_config("mnist-restore", out, steps=steps, ckpt_every=2, sample_every=100,
                           family_params={"corruption": "mask:random+noise:0.1"})  # fmt: skip

    a = Trainer(cfg(tmp_path / "a", 4), small, progress=False).train()
    Trainer(cfg(tmp_path / "b", 2), small, progress=False).train()
    b = Trainer(cfg(tmp_path / "b", 4), small, resume=True, progress=False).train()
    ta, tb = load_checkpoint(a.checkpoint).tensors, load_checkpoint(b.checkpoint).tensors
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_refusals_are_one_line(tmp_path):
    with pytest.raises(
        UserError, match=r"^family_params\.corruption: unknown corruption 'rust' in 'rust'; known: "
    ):
        preset("mnist-restore", family_params={"corruption": "rust"}).resolved()
    with pytest.raises(
        UserError,
        match=r"^arch: corruption 'down:4' \(upscale\) trains 'srresnet-patchgan', got 'unet-patchgan'$",
    ):
        preset("mnist-restore", family_params={"corruption": "down:4"}).resolved()
    cfg = preset("mnist-sr4", family_params={"corruption": "down:8"}).resolved()
    with pytest.raises(
        UserError, match=r"^down:8: down:8 needs image sides divisible by 8, the data's are 28x28$"
    ):
        Pix2PixFamily(cfg, DataInfo((1, 28, 28), 10, tuple("0123456789")))
    fam = Pix2PixFamily(
        preset("mnist-sr4").resolved(), DataInfo((1, 28, 28), 10, tuple("0123456789"), dataset={})
    )
    with pytest.raises(
        UserError, match=r"^family_params\.feature_weight: the feature loss needs an evaluator bound"
    ):
        fam.build()


def test_the_grid_shows_input_output_and_truth(tiny_checkpoint):
    ck = load_checkpoint(tiny_checkpoint("mnist-sr4"))
    from training.checkpoint import checkpoint_family

    fam = checkpoint_family(ck)
    fam.data = DataInfo(
        (1, 28, 28), 10, tuple("0123456789"), preview=np.zeros((10, 1, 28, 28), np.uint8) + 200
    )
    imgs, cols = fam.grid(build_generator(ck), torch.device("cpu"))
    assert cols == 10 and imgs.shape == (30, 28, 28, 1)
    assert (imgs[:10] == 200).all() and (
        imgs[20:] == 200
    ).all()  # the damaged input (upsampled) and the truth
