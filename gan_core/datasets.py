"""Datasets held as one uint8 array: MNIST-style gzip IDX pairs, image folders (gan_core.image_folder), .npz.

Everything the training loop needs per step is a slice of one contiguous uint8 tensor, so there
are no per-item Python transforms in the hot loop. Grayscale and RGB, any size; a preprocessing
policy (gan_core.preprocess) brings every image to one size and mode when asked. Every reader
turns bad input into a `DataError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_core.idx import IMAGE_MAGIC, LABEL_MAGIC, DataError, read_idx
from gan_core.image_folder import UNLABELED, decode_folder
from gan_core.preprocess import Preprocess

MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Where the repo's tests and benchmarks find MNIST without a network (see ../shared/data/README.md).
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def content_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """Short sha256 of the pixels and labels, read in slices (a memory-mapped array is never copied whole)."""
    h = hashlib.sha256()
    step = max(1, (64 << 20) // max(1, images[0].nbytes))
    for i in range(0, len(images), step):
        h.update(np.ascontiguousarray(images[i : i + step]).data)
    h.update(np.ascontiguousarray(labels).astype(np.int64).data)
    return h.hexdigest()[:16]


@dataclass
class ImageDataset:
    """Images as uint8 [N, C, H, W] plus int64 labels; knows its shape and classes.

    `meta` goes into the model card's `dataset` (format, split, preprocess; labelled=False for data
    without labels, which then holds one class).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    name: str
    source: str
    meta: dict = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

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

    @property
    def labelled(self) -> bool:
        return bool(self.meta.get("labelled", True))

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """Short sha256 of the pixels and labels: tells a resumed run it sees the same data (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = content_fingerprint(self.images, self.labels)
        return self._fingerprint

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
            labelled = "labels" in z
            labels = z["labels"] if labelled else np.zeros(len(images), np.int64)
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
    if not labelled:
        names = [UNLABELED]
    names = names or [str(i) for i in range(int(labels.max(initial=0)) + 1)]
    meta = {"format": "npz"} if labelled else {"format": "npz", "labelled": False}
    return ImageDataset(np.ascontiguousarray(images), labels, names, path.stem, str(path), meta)


def load_image_folder(folder: Path, prep: Preprocess | None = None) -> ImageDataset:
    """Class subfolders (ImageFolder layout; classes = sorted subfolder names) or a flat folder (unlabelled)."""
    prep = prep or Preprocess()
    images, labels, classes, labelled, fp = decode_folder(folder, prep)
    meta: dict = {"format": "folder"}
    if not labelled:
        meta["labelled"] = False
    if prep.active:
        meta["preprocess"] = prep.describe()
    return ImageDataset(images, labels, classes, folder.name, str(folder), meta, fp)


def _preprocessed(ds: ImageDataset, prep: Preprocess | None) -> ImageDataset:
    """An array dataset (IDX, .npz) with the policy applied; the same object when there is nothing to do."""
    if prep is None or not prep.active:
        return ds
    try:
        images = prep.array(ds.images)
    except ValueError as e:
        raise DataError(f"{ds.source}: cannot convert its images ({e})") from None
    return ImageDataset(
        images, ds.labels, ds.class_names, ds.name, ds.source, {**ds.meta, "preprocess": prep.describe()}
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


def _layout(p: Path) -> str:
    """idx | npz-splits | split-folders | folder for a folder; npz for a file."""
    if p.is_file():
        if p.suffix == ".npz":
            return "npz"
        raise DataError(f"{p}: unsupported file type (give an IDX folder, an image folder or a .npz)")
    names = {q.name for q in p.iterdir()}
    if any(n.startswith(("train-images", "t10k-images", "train-labels", "t10k-labels")) for n in names):
        return "idx"
    if any(f"{s}.npz" in names for s in SPLIT_FILES):  # e.g. an augmentation job's npz output
        return "npz-splits"
    if any((p / s).is_dir() for s in SPLIT_FILES):
        return "split-folders"
    return "folder"


def _resolve(path: str | os.PathLike | None, download: bool) -> Path:
    p = Path(path) if path is not None else default_mnist_path()
    if not p.exists():
        if path is None and download:
            download_mnist(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return p


def has_split(path: str | os.PathLike | None, split: str) -> bool:
    """True when the data holds that split itself (a plain image folder or one .npz is a train split only)."""
    p = _resolve(path, False)
    layout = _layout(p)
    if layout == "idx":
        return all((p / f"{stem}.gz").exists() or (p / stem).exists() for stem in SPLIT_FILES[split])
    if layout == "npz-splits":
        return (p / f"{split}.npz").is_file()
    if layout == "split-folders":
        return (p / split).is_dir()
    return split == "train"


def load_dataset(
    path: str | os.PathLike | None = None,
    split: str = "train",
    download: bool = False,
    prep: Preprocess | None = None,
) -> ImageDataset:
    """Open a dataset from an IDX folder, an image folder or a .npz; `None` means MNIST.

    Data without its own test split (one .npz, a plain image folder) returns its only split for
    any `split` (see `has_split`); a folder of split folders or split .npz files without the
    asked one is an error.
    """
    if split not in SPLIT_FILES:
        raise DataError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    p = _resolve(path, download)
    layout = _layout(p)
    if layout == "npz":
        return _preprocessed(load_npz(p, split), prep)
    if layout == "idx":
        return _preprocessed(load_idx_folder(p, split), prep)
    if layout in ("npz-splits", "split-folders") and not has_split(p, split):
        raise DataError(f"{p}: holds no {split} split (no {split}.npz and no {split}/ folder)")
    if layout == "npz-splits":
        ds = _preprocessed(load_npz(p / f"{split}.npz", split), prep)
    elif layout == "split-folders":
        ds = load_image_folder(p / split, prep)
    else:
        return load_image_folder(p, prep)
    ds.name, ds.source = p.name, str(p)  # the dataset, not its split (meta says which)
    ds.meta["split"] = split
    return ds


def holdout_split(
    ds: ImageDataset, fraction: float = 0.1, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """(rest, held out): a seeded, per-class share `fraction` of the images, for data without a test split."""
    if not 0 < fraction < 1:
        raise DataError(f"holdout fraction: must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, len(ds)])
    held = []
    for c in range(ds.num_classes):
        members = np.flatnonzero(ds.labels == c)
        k = int(round(fraction * len(members)))
        if len(members) > 1:
            k = min(max(k, 1), len(members) - 1)
            held.append(rng.permutation(members)[:k])
    mask = np.zeros(len(ds), bool)
    if held:
        mask[np.concatenate(held)] = True
    if not mask.any() or mask.all():
        raise DataError(f"{ds.source}: {len(ds)} images are too few to hold out a test split")
    info = {"holdout": {"fraction": fraction, "seed": seed, "of": ds.fingerprint()}}

    def part(m: np.ndarray, split: str) -> ImageDataset:
        meta = {**ds.meta, "split": split, **info}
        return ImageDataset(ds.images[m], ds.labels[m], ds.class_names, ds.name, ds.source, meta)

    return part(~mask, "train"), part(mask, "test")
