import gzip

import numpy as np
import pytest
from PIL import Image

from gan_core.datasets import DataError, has_split, holdout_split, load_dataset, read_idx
from gan_core.preprocess import Preprocess


def test_mnist_idx_shapes_and_counts(mnist_train, mnist_dir):
    assert mnist_train.images.shape == (60000, 1, 28, 28)
    assert mnist_train.images.dtype == np.uint8
    assert mnist_train.image_shape == (1, 28, 28)
    assert mnist_train.num_classes == 10
    assert mnist_train.class_counts().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = load_dataset(mnist_dir, "test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.class_counts()[1] == 1135


def _write_idx(path, magic, arr, truncate=0):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(data[: len(data) - truncate])


def _idx_pair(folder, n_img=5, n_lbl=5, img_magic=2051, truncate=0):
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(
        folder / "train-images-idx3-ubyte.gz", img_magic, np.zeros((n_img, 28, 28), np.uint8), truncate
    )
    _write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, np.arange(n_lbl, dtype=np.uint8) % 3)
    return folder


def test_idx_wrong_magic_names_file(tmp_path):
    d = _idx_pair(tmp_path / "bad", img_magic=1234)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: wrong magic number 1234"):
        load_dataset(d)


def test_idx_truncated_names_file(tmp_path):
    d = _idx_pair(tmp_path / "trunc", truncate=100)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: truncated or padded IDX data"):
        load_dataset(d)


def test_idx_count_mismatch(tmp_path):
    d = _idx_pair(tmp_path / "mismatch", n_img=5, n_lbl=4)
    with pytest.raises(DataError, match="5 images but train-labels-idx1-ubyte.gz holds 4 labels"):
        load_dataset(d)


def test_not_gzip_garbage(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(DataError, match="x.gz: cannot read"):
        read_idx(p, 2051)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nope")


def test_image_folder_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    for i, img in enumerate(imgs):
        cls = ["cat", "dog"][i % 2]
        (tmp_path / cls).mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["cat", "dog"]
    assert ds.images.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[ds.labels == 0][:, 0], imgs[0::2])


def test_image_folder_mixed_sizes(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a" / "1.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "a" / "2.png")
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert str(e.value) == (
        f"{tmp_path / 'a' / '2.png'}: image size 32x32 differs from the first image's 28x28 (1.png); "
        "pass --image-size N to resize every image (--fit crop or stretch)"
    )


def test_npz_and_fingerprint(tmp_path, mnist_small):
    ds = load_dataset(mnist_small)
    assert ds.images.shape == (2000, 1, 28, 28) and ds.num_classes == 10
    assert ds.fingerprint() == load_dataset(mnist_small).fingerprint()
    np.savez(tmp_path / "f.npz", images=np.zeros((3, 28, 28), np.float32))
    with pytest.raises(DataError, match="'images' must be uint8"):
        load_dataset(tmp_path / "f.npz")


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_colour_folder_jpeg_and_png_with_splits(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for i, img in enumerate(imgs):
        _save(tmp_path / "d" / ("train" if i < 3 else "test") / ["red", "blue"][i % 2] / f"{i}.png", img)
    _save(tmp_path / "d" / "train" / "red" / "j.jpg", imgs[0])  # JPEG is lossy: only its shape is checked
    ds = load_dataset(tmp_path / "d")
    assert ds.images.shape == (4, 3, 32, 32) and ds.class_names == ["blue", "red"] and ds.labelled
    assert ds.name == "d" and ds.meta == {"format": "folder", "split": "train"}
    np.testing.assert_array_equal(ds.images[0].transpose(1, 2, 0), imgs[1])  # blue/1.png, HWC -> CHW
    assert has_split(tmp_path / "d", "test") and load_dataset(tmp_path / "d", "test").images.shape == (
        1,
        3,
        32,
        32,
    )


def test_flat_folder_is_one_unlabelled_class(tmp_path):
    for i in range(3):
        _save(tmp_path / f"{i}.png", np.full((8, 8, 3), i * 50, np.uint8))
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["unlabeled"] and not ds.labelled and ds.meta["labelled"] is False
    assert ds.labels.tolist() == [0, 0, 0] and not has_split(tmp_path, "test")
    _save(tmp_path / "cls" / "x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"0.png: an image beside class subfolders \(cls, ...\)"):
        load_dataset(tmp_path)


def test_mixed_modes_are_refused_unless_converted(tmp_path):
    _save(tmp_path / "a" / "1.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "a" / "2.png", np.full((8, 8, 3), 200, np.uint8))
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert str(e.value) == (
        f"{tmp_path / 'a' / '2.png'}: colour (3 channels) image among grayscale (1 channel) ones (first: 1.png); "
        "pass --channels 1 or --channels 3 to convert every image"
    )
    rgb = load_dataset(tmp_path, prep=Preprocess(channels=3))
    assert rgb.images.shape == (2, 3, 8, 8) and rgb.images[1].max() == 200 and rgb.images[0].max() == 0
    assert rgb.meta["preprocess"] == {"channels": 3}
    assert load_dataset(tmp_path, prep=Preprocess(channels=1)).images.shape == (2, 1, 8, 8)


def test_resize_policy_crop_and_stretch(tmp_path):
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # a white centre square 40x40 in a black 80x40 image
    _save(tmp_path / "a" / "wide.png", wide)
    _save(tmp_path / "a" / "small.png", np.full((16, 16, 3), 255, np.uint8))
    crop = load_dataset(tmp_path, prep=Preprocess(32, "crop"))
    assert crop.images.shape == (2, 3, 32, 32)
    assert crop.images[1].min() >= 240  # the centre crop is the white square (lanczos rings at the edge)
    assert crop.meta["preprocess"] == {"size": 32, "fit": "crop", "resample": "lanczos"}
    stretch = load_dataset(tmp_path, prep=Preprocess(32, "stretch"))
    assert stretch.images[1][:, :, 0].max() < 10  # stretched: the black margins stay
    assert crop.fingerprint() != stretch.fingerprint()
    with pytest.raises(DataError, match="fit: must be one of crop, stretch, got 'pad'"):
        Preprocess(32, "pad")


def test_npz_resize_and_colour_conversion(tmp_path):
    np.savez(tmp_path / "g.npz", images=np.full((3, 28, 28), 100, np.uint8), labels=np.array([0, 1, 0]))
    ds = load_dataset(tmp_path / "g.npz", prep=Preprocess(32, channels=3))
    assert ds.images.shape == (3, 3, 32, 32) and (ds.images == 100).all() and ds.labels.tolist() == [0, 1, 0]
    assert load_dataset(tmp_path / "g.npz", prep=Preprocess()).images.shape == (3, 1, 28, 28)


def test_decoded_folder_is_cached_and_memory_mapped_over_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_DATA_CACHE", str(tmp_path / "cache"))
    imgs = np.random.default_rng(2).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    for i, img in enumerate(imgs):
        _save(tmp_path / "d" / "c" / f"{i}.png", img)
    first = load_dataset(tmp_path / "d")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1 and not isinstance(first.images, np.memmap)
    monkeypatch.setattr("gan_core.image_folder._decode", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setenv("GAN_DATA_RAM_BUDGET", "1K")  # 3,840 bytes of pixels > 1 KiB: mapped, not read
    again = load_dataset(tmp_path / "d")
    assert isinstance(again.images, np.memmap) and again.images.flags.writeable
    np.testing.assert_array_equal(again.images, first.images)
    assert again.fingerprint() == first.fingerprint()
    monkeypatch.undo()
    monkeypatch.setenv("GAN_DATA_CACHE", str(tmp_path / "cache"))
    _save(tmp_path / "d" / "c" / "5.png", imgs[0])  # a new file is a new cache entry
    assert len(load_dataset(tmp_path / "d")) == 6 and len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_missing_split_of_split_folders_and_holdout(tmp_path):
    for i in range(20):
        _save(tmp_path / "d" / "train" / "ab"[i % 2] / f"{i}.png", np.full((4, 4), i, np.uint8))
    with pytest.raises(DataError, match=r"d: holds no test split \(no test.npz and no test/ folder\)"):
        load_dataset(tmp_path / "d", "test")
    ds = load_dataset(tmp_path / "d")
    rest, held = holdout_split(ds, 0.1, 0)
    assert len(held) == 2 and len(rest) == 18 and sorted(held.labels.tolist()) == [0, 1]  # one per class
    assert held.meta["holdout"] == {"fraction": 0.1, "seed": 0, "of": ds.fingerprint()}
    again = holdout_split(ds, 0.1, 0)[1]
    np.testing.assert_array_equal(again.images, held.images)
