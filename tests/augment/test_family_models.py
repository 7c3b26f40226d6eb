"""The augmentation job runs the tiny export of every registered generative preset (tests/conftest.py
generative_presets) through its card alone, and writes the images the model gives for its feeds: the images
the service serves for them (tests/service/test_family_models.py)."""

from __future__ import annotations

import numpy as np
import pytest

from augment.job import run_job
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from tests.conftest import generative_presets


@pytest.mark.parametrize("name", generative_presets())
def test_job_writes_the_images_the_model_gives_for_its_feeds(tiny_onnx, tmp_path, name):
    path = tiny_onnx(name)[1]
    sess = open_generator(path, threads=1)
    card = sess.card
    # a code input with a value of its own (StyleGAN's truncation_psi) is passed through as the job's codes
    codes = {"truncation_psi": 0.7} if any(i.name == "truncation_psi" for i in card.inputs) else None
    kind = {"per_class": 2} if card.conditional else {"total": 6}
    res = run_job(path, tmp_path / "out", format="npz", seed=3, truncation=1.0, codes=codes, **kind)
    assert res.complete
    with np.load(tmp_path / "out" / "train.npz") as z:
        images, labels = z["images"], z["labels"]
    if card.conditional:
        assert sorted(labels.tolist()) == sorted(list(range(card.num_classes)) * 2)
    else:
        assert len(images) == 6
    values = {**({"labels": labels} if card.conditional else {}), **(codes or {})}
    want = sess.run(build_feeds(card, 3, range(len(images)), values or None, truncation=1.0))
    np.testing.assert_array_equal(images, want[..., 0])
