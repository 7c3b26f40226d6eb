import gzip

import numpy as np
import pytest
from PIL import Image

from gan_core.datasets import DataError, load_dataset, read_idx


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
    with pytest.raises(DataError, match=r"2.png: image size \(32, 32\) differs"):
        load_dataset(tmp_path)


def test_npz_and_fingerprint(tmp_path, mnist_small):
    ds = load_dataset(mnist_small)
    assert ds.images.shape == (2000, 1, 28, 28) and ds.num_classes == 10
    assert ds.fingerprint() == load_dataset(mnist_small).fingerprint()
    np.savez(tmp_path / "f.npz", images=np.zeros((3, 28, 28), np.float32))
    with pytest.raises(DataError, match="'images' must be uint8"):
        load_dataset(tmp_path / "f.npz")
