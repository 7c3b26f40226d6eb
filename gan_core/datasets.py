"""Datasets held as one uint8 array in memory: MNIST-style gzip IDX pairs, image folders, .npz.

Everything the training loop needs per step is a slice of one contiguous uint8 tensor, so there
are no per-item Python transforms in the hot loop. Every reader turns bad input into a
`DataError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_core.idx import IMAGE_MAGIC, LABEL_MAGIC, DataError, read_idx

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Where the repo's tests and benchmarks find MNIST without a network (see ../shared/data/README.md).
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


@dataclass
class ImageDataset:
    """Images as uint8 [N, C, H, W] plus int64 labels; knows its shape and classes."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    name: str
    source: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"{self.source}: images must be uint8 [N, C, H, W], got {self.images.dtype} {self.images.shape}"
            )
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.images)} images but {len(self.labels)} labels")
        if len(self.images) == 0:
            raise DataError(f"{self.source}: the dataset holds no images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """Short sha256 of the pixels and labels: tells a resumed run it sees the same data."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).data)
        h.update(np.ascontiguousarray(self.labels).astype(np.int64).data)
        return h.hexdigest()[:16]

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder / (stem + '.gz')}: file not found (an MNIST-style folder needs {stem}[.gz])")


def load_idx_folder(folder: Path, split: str = "train") -> ImageDataset:
    img_stem, lbl_stem = SPLIT_FILES[split]
    img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
    images = read_idx(img_path, IMAGE_MAGIC)
    labels = read_idx(lbl_path, LABEL_MAGIC)
    if images.ndim != 3:
        raise DataError(f"{img_path}: expected 3 dimensions [N, H, W], header says {list(images.shape)}")
    if labels.ndim != 1:
        raise DataError(f"{lbl_path}: expected 1 dimension [N], header says {list(labels.shape)}")
    if len(images) != len(labels):
        raise DataError(f"{img_path}: {len(images)} images but {lbl_path.name} holds {len(labels)} labels")
    n_classes = int(labels.max()) + 1
    return ImageDataset(
        images=images[:, None].copy(),
        labels=labels.astype(np.int64),
        class_names=[str(i) for i in range(n_classes)],
        name=folder.name,
        source=str(folder),
        meta={"format": "idx", "split": split},
    )


def load_npz(path: Path, split: str = "train") -> ImageDataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z:
                raise DataError(f"{path}: .npz needs an 'images' array (found {sorted(z.files)})")
            images = z["images"]
            labels = z["labels"] if "labels" in z else np.zeros(len(images), np.int64)
            names = [str(n) for n in z["class_names"]] if "class_names" in z else None
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if images.dtype != np.uint8:
        raise DataError(f"{path}: 'images' must be uint8 (0-255), got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4:
        raise DataError(
            f"{path}: 'images' must be [N, H, W], [N, C, H, W] or [N, H, W, C], got {images.shape}"
        )
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.min(initial=0) < 0:
        raise DataError(f"{path}: labels must be >= 0")
    names = names or [str(i) for i in range(int(labels.max(initial=0)) + 1)]
    return ImageDataset(np.ascontiguousarray(images), labels, names, path.stem, str(path), {"format": "npz"})


def load_image_folder(folder: Path) -> ImageDataset:
    """A folder of class subfolders (ImageFolder layout); class names are the sorted subfolder names."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class subfolders (expected {folder}/<class>/<image>.png)")
    images, labels, shape, mode = [], [], None, None
    for idx, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    if mode is None:
                        mode = "L" if im.mode in ("L", "1", "I", "I;16", "P", "LA") else "RGB"
                    arr = np.asarray(im.convert(mode))
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{f}: not a readable image ({e})") from None
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"{f}: image size {arr.shape} differs from the first image's {shape}")
            images.append(arr)
            labels.append(idx)
    if not images:
        raise DataError(f"{folder}: class subfolders hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    arr = np.stack(images)
    arr = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)
    return ImageDataset(
        np.ascontiguousarray(arr),
        np.array(labels, np.int64),
        classes,
        folder.name,
        str(folder),
        {"format": "folder"},
    )


def download_mnist(folder: Path) -> None:
    """The usual download, for users who are online; tests never call this."""
    folder.mkdir(parents=True, exist_ok=True)
    for stems in SPLIT_FILES.values():
        for stem in stems:
            target = folder / f"{stem}.gz"
            if target.exists():
                continue
            tmp = target.with_suffix(".gz.part")
            try:
                urllib.request.urlretrieve(MNIST_URL + target.name, tmp)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise DataError(
                    f"{MNIST_URL + target.name}: download failed ({e}); pass --data PATH to local files"
                ) from None
            os.replace(tmp, target)


def default_mnist_path() -> Path:
    """The offline copy beside the repo when present, else ~/.cache/gan-service/mnist."""
    env = os.environ.get("GAN_MNIST_DIR")
    if env:
        return Path(env)
    if SHARED_MNIST.exists():
        return SHARED_MNIST
    return Path.home() / ".cache" / "gan-service" / "mnist"


def load_dataset(
    path: str | os.PathLike | None = None, split: str = "train", download: bool = False
) -> ImageDataset:
    """Open a dataset from an IDX folder, an image folder or a .npz; `None` means MNIST."""
    if split not in SPLIT_FILES:
        raise DataError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    p = Path(path) if path is not None else default_mnist_path()
    if not p.exists():
        if path is None and download:
            download_mnist(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix == ".npz":
            return load_npz(p, split)
        raise DataError(f"{p}: unsupported file type (give an IDX folder, an image folder or a .npz)")
    names = {q.name for q in p.iterdir()}
    if any(n.startswith(("train-images", "t10k-images", "train-labels", "t10k-labels")) for n in names):
        return load_idx_folder(p, split)
    if f"{split}.npz" in names:  # e.g. an augmentation job's npz output
        return load_npz(p / f"{split}.npz", split)
    split_dir = p / split
    if split_dir.is_dir():
        return load_image_folder(split_dir)
    return load_image_folder(p)
