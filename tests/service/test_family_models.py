"""SAGAN, BigGAN-style, EBGAN and BEGAN generators (tiny, trained 2 steps) export with parity, serve and
feed the augmentation job through their cards alone, like every other model."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from augment.job import run_job
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from service.core import ServingCore
from service.schemas import GenerateRequest
from service.settings import Settings

FAMILIES = {"mnist-sagan": "sagan", "mnist-biggan": "biggan", "mnist-ebgan": "dcgan", "mnist-began": "mlp"}


@pytest.fixture(scope="module")
def family_dir(tiny_onnx, tmp_path_factory):
    d = tmp_path_factory.mktemp("families")
    for name in FAMILIES:
        shutil.copy(tiny_onnx(name)[1], d / f"{name}.onnx")
    return d


def direct(path, seed, indices, labels=None, truncation=None):
    sess = open_generator(path, threads=1)
    values = {"labels": labels} if labels is not None else None
    return sess.run(build_feeds(sess.card, seed, indices, values, truncation=truncation))


def test_exports_pass_parity_and_serve_the_images_of_their_cards(family_dir, tiny_onnx):
    core = ServingCore(Settings(models_dir=family_dir, default_model="mnist-sagan", ort_threads=1))
    try:
        for name, arch in FAMILIES.items():
            card = tiny_onnx(name)[2]
            assert card.arch == arch and card.export.parity_max_abs_diff <= 1
            assert card.export.float_parity_max_abs_diff <= 1e-4 and card.export.parity_batches == [1, 7, 256]
            path = family_dir / f"{name}.onnx"
            for truncation in (None, 0.7):
                got = asyncio.run(core.generate(GenerateRequest(model=name, count=5, seed=3, start_index=2,
                                                                truncation=truncation)))  # fmt: skip
                assert got.images.shape == (5, 28, 28, 1)
                want = direct(path, 3, range(2, 7), truncation=truncation)
                np.testing.assert_array_equal(got.images, want)
            plain = asyncio.run(core.generate(GenerateRequest(model=name, count=5, seed=3, start_index=2)))
            assert not np.array_equal(plain.images, got.images)  # truncation changed the latents
    finally:
        core.close()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_augmentation_job_writes_the_served_images(family_dir, name, tmp_path):
    path = family_dir / f"{name}.onnx"
    card = open_generator(path, threads=1).card
    kind = {"per_class": 1} if card.conditional else {"total": 6}
    res = run_job(path, tmp_path / "out", format="npz", seed=5, truncation=1.0, **kind)
    assert res.complete
    with np.load(tmp_path / "out" / "train.npz") as z:
        images, labels = z["images"], z["labels"]
    want = direct(path, 5, range(len(images)), labels if card.conditional else None, truncation=1.0)
    np.testing.assert_array_equal(images, want[..., 0])
