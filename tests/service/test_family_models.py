"""The tiny model of every registered generative preset (tests/conftest.py generative_presets: each mnist-*
preset whose family makes images from latents) exports with parity and serves the images of its card alone,
like every other model; tests/augment/test_family_models.py feeds the same models to the augmentation job."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from service.core import ServingCore
from service.schemas import GenerateRequest
from service.settings import Settings
from tests.conftest import generative_presets
from training.checkpoint import load_checkpoint


def direct(path, seed, indices, labels=None, truncation=None):
    sess = open_generator(path, threads=1)
    values = {"labels": labels} if labels is not None else None
    return sess.run(build_feeds(sess.card, seed, indices, values, truncation=truncation))


@pytest.mark.parametrize("name", generative_presets())
def test_export_passes_parity_and_serves_the_images_of_its_card(name, tiny_onnx, tmp_path):
    ckpt, onnx_path, card = tiny_onnx(name)
    # the card names the generator's network as training recorded it (families test what it names)
    assert card.model_copy(update={"export": None}) == load_checkpoint(ckpt).card
    assert card.export.parity_max_abs_diff <= 1
    assert card.export.float_parity_max_abs_diff <= 1e-4 and card.export.parity_batches == [1, 7, 256]
    path = tmp_path / f"{name}.onnx"
    shutil.copy(onnx_path, path)
    core = ServingCore(Settings(models_dir=tmp_path, default_model=name, ort_threads=1))
    try:
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
