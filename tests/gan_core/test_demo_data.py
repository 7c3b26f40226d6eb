"""The procedural colour demo set: deterministic per image, balanced classes, both output formats."""

import numpy as np
import pytest

from gan_core.datasets import DataError, load_dataset
from gan_core.demo_data import CLASSES, make_split, write_demo_data


def test_image_i_depends_only_on_seed_split_and_i():
    a, la = make_split(12, 32, seed=3)
    b, lb = make_split(25, 32, seed=3)
    np.testing.assert_array_equal(a, b[:12])
    assert a.shape == (12, 3, 32, 32) and a.dtype == np.uint8 and la.tolist() == [i % 10 for i in range(12)]
    assert not np.array_equal(make_split(12, 32, seed=4)[0], a)
    assert not np.array_equal(make_split(12, 32, seed=3, split="test")[0], a)
    assert make_split(2, 64)[0].shape == (2, 3, 64, 64) and make_split(2, 28)[0].shape == (2, 3, 28, 28)


def test_images_are_colourful_and_classes_differ():
    x, y = make_split(200, 32)
    spread = (x.max(1).astype(int) - x.min(1)).mean()  # colour: channels differ per pixel
    assert spread > 30
    # the shape, not the colour, tells the classes apart: per-class mean "bright shape" masks differ
    masks = np.stack([(x[y == c].max(1) > 180).mean(0) for c in range(len(CLASSES))])
    dist = np.abs(masks[:, None] - masks[None]).mean((2, 3))
    assert (dist + np.eye(len(CLASSES))).min() > 0.02


def test_write_folder_and_npz_load_back(tmp_path):
    write_demo_data(tmp_path / "f", size=28, n_train=20, n_test=10)
    ds, test = load_dataset(tmp_path / "f"), load_dataset(tmp_path / "f", "test")
    assert ds.images.shape == (20, 3, 28, 28) and test.images.shape == (10, 3, 28, 28)
    assert ds.class_names == sorted(CLASSES) and ds.name == "f"
    write_demo_data(tmp_path / "n", size=28, n_train=20, n_test=10, format="npz")
    npz = load_dataset(tmp_path / "n")
    assert npz.class_names == CLASSES
    want, labels = make_split(20, 28)
    np.testing.assert_array_equal(npz.images, want)
    # the folder holds the same pixels (PNG is lossless), under sorted class names
    order = np.argsort([CLASSES[k] for k in labels], kind="stable")
    np.testing.assert_array_equal(ds.images, want[order])
    with pytest.raises(DataError, match="f: folder exists and is not empty"):
        write_demo_data(tmp_path / "f")
    with pytest.raises(DataError, match="size: the demo data comes in 28, 32, 64 px, got 48"):
        make_split(1, 48)


def test_pixel_noise_changes_only_the_noise():
    noisy, _ = make_split(20, 32)
    clean, _ = make_split(20, 32, pixel_noise=0)
    diff = noisy.astype(int) - clean
    assert 2.5 < np.abs(diff).mean() < 3.5  # std 4 Gaussian: mean |n| = 3.19, a little less where clipped
    assert abs(diff.mean()) < 0.2 and np.abs(diff).max() < 25
    np.testing.assert_array_equal(make_split(20, 32, pixel_noise=4.0)[0], noisy)
    with pytest.raises(DataError, match=r"pixel_noise: must be in \[0, 64\] levels, got -1"):
        make_split(1, 32, pixel_noise=-1)


def test_the_default_backgrounds_keep_the_published_scenes_and_flat_ones_are_one_colour():
    """Default scenes are pinned (evaluators trained on a demo set stay bound to a set re-made later);
    `backgrounds` draws from other kinds, e.g. flat, to measure what the textures cost."""
    import hashlib

    x, _ = make_split(40, 32)
    assert hashlib.sha256(x.tobytes()).hexdigest()[:16] == "20b567499afe2b1e"
    flat, _ = make_split(40, 32, pixel_noise=0, backgrounds=("flat",))
    corners = flat[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # [N, C, 4]: shapes stay clear of the corners
    assert (corners == corners[:, :, :1]).all() and len(np.unique(corners[:, :, 0], axis=0)) > 30
    textured = make_split(40, 32, pixel_noise=0)[0][:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (textured != textured[:, :, :1]).any((1, 2)).mean() > 0.5
    # drawn uniformly from the kinds named: the default set in another order is another set of scenes
    assert not np.array_equal(
        make_split(40, 32, backgrounds=("noise", "checker", "stripes", "gradient"))[0], x
    )
    with pytest.raises(
        DataError,
        match="backgrounds: must be one or more of gradient, stripes, checker, noise, flat, got dots",
    ):
        make_split(1, 32, backgrounds=("dots",))
