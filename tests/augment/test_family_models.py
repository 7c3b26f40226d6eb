"""The augmentation job runs StyleGAN and progressive-GAN exports through their cards alone."""

from __future__ import annotations

import numpy as np
import pytest

from augment.job import run_job
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator


@pytest.mark.parametrize("preset", ["mnist-stylegan", "mnist-progan"])
def test_job_writes_the_images_the_model_gives_for_its_feeds(tiny_onnx, tmp_path, preset):
    path = tiny_onnx(preset)[1]
    codes = {"truncation_psi": 0.7} if preset == "mnist-stylegan" else None
    res = run_job(path, tmp_path / "out", per_class=2, format="npz", seed=3, codes=codes)
    assert res.complete
    with np.load(tmp_path / "out" / "train.npz") as z:
        images, labels = z["images"], z["labels"]
    assert sorted(labels.tolist()) == sorted(list(range(10)) * 2)
    sess = open_generator(path, threads=1)
    want = sess.run(build_feeds(sess.card, 3, range(20), {"labels": labels, **(codes or {})}))
    np.testing.assert_array_equal(images, want[..., 0])
