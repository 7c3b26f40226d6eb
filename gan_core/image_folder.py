"""Image folders (PNG, JPEG, ...) -> one uint8 [N, C, H, W] array, decoded once and cached on disk.

Layouts: class subfolders (`DIR/<class>/<image>`, labelled, classes = sorted folder names) or the
images directly in DIR (flat: one unlabelled class, for unconditional models). Without a
preprocessing policy every image must share the first image's size and colour mode; the first
that differs is named in the error. Decoding runs in a thread pool (Pillow's decoders release the
GIL) straight into the output array.

Cache: the decoded array goes to `$GAN_DATA_CACHE` (default ~/.cache/gan-service/data; `off`
disables it) as an .npy keyed by the folder, every file's name, size and mtime, and the policy,
so the next run (or evaluation) of the same folder reads one file instead of decoding thousands.
A cached array larger than `$GAN_DATA_RAM_BUDGET` (bytes, K/M/G suffixes; default a quarter of
physical memory) is memory-mapped copy-on-write instead of read into memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gan_core.fileio import atomic_write_bytes
from gan_core.idx import DataError
from gan_core.preprocess import Preprocess, channels_of_mode

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
UNLABELED = "unlabeled"
CACHE_VERSION = 1
DECODE_CHUNK = 256  # files per thread-pool task


def cache_dir() -> Path | None:
    v = os.environ.get("GAN_DATA_CACHE")
    if v and v.lower() in ("off", "0", "none"):
        return None
    return Path(v) if v else Path.home() / ".cache" / "gan-service" / "data"


def ram_budget() -> int:
    """Bytes a decoded dataset may take in memory before it is memory-mapped instead."""
    v = os.environ.get("GAN_DATA_RAM_BUDGET")
    if v:
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        try:
            mult = units.get(v[-1].upper(), 1)
            return int(float(v[:-1] if v[-1].upper() in units else v) * mult)
        except ValueError:
            raise DataError(
                f"GAN_DATA_RAM_BUDGET: expected bytes such as 4000000000 or 4G, got {v!r}"
            ) from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def scan(folder: Path) -> tuple[list[Path], np.ndarray, list[str], bool]:
    """(files, labels, class names, labelled) of a class-subfolder or flat folder, in a fixed order."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [(d.name, _images_in(d)) for d in subdirs]
    per_class = [(name, files) for name, files in per_class if files]
    top = _images_in(folder)
    if per_class:
        if top:
            raise DataError(
                f"{top[0]}: an image beside class subfolders ({', '.join(n for n, _ in per_class[:3])}, ...); "
                "move it into a class folder, or keep all images flat for an unlabelled dataset"
            )
        files = [f for _, fs in per_class for f in fs]
        labels = np.concatenate([np.full(len(fs), k, np.int64) for k, (_, fs) in enumerate(per_class)])
        return files, labels, [n for n, _ in per_class], True
    if top:
        return top, np.zeros(len(top), np.int64), [UNLABELED], False
    raise DataError(
        f"{folder}: no images (expected {folder}/<class>/<image>.png, or images directly in it; "
        f"suffixes {', '.join(sorted(IMAGE_SUFFIXES))})"
    )


def _decode(path: Path, prep: Preprocess) -> tuple[np.ndarray, int, tuple[int, int]]:
    """One file -> (uint8 [C, H, W] after the policy, channels of its own mode, its own size W, H)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = prep.image(im)
            own = channels_of_mode(im.mode), im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), own[0], own[1]


def _check(path: Path, first: Path, got, want, prep: Preprocess) -> None:
    (c, size), (c0, size0) = got, want
    if prep.channels is None and c != c0:
        kind = {1: "grayscale (1 channel)", 3: "colour (3 channels)"}
        raise DataError(
            f"{path}: {kind[c]} image among {kind[c0]} ones (first: {first.name}); "
            "pass --channels 1 or --channels 3 to convert every image"
        )
    if prep.size is None and size != size0:
        raise DataError(
            f"{path}: image size {size[0]}x{size[1]} differs from the first image's {size0[0]}x{size0[1]} "
            f"({first.name}); pass --image-size N to resize every image (--fit crop or stretch)"
        )


def _decode_into(files: list[Path], prep: Preprocess, out_for_shape) -> np.ndarray:
    """Decode every file into the array `out_for_shape(shape)` allocates, checking sizes and modes."""
    first, c0, size0 = _decode(files[0], prep)
    out = out_for_shape((len(files), *first.shape))
    out[0] = first
    chunks = [range(a, min(a + DECODE_CHUNK, len(files))) for a in range(1, len(files), DECODE_CHUNK)]

    def work(idx: range) -> None:
        for i in idx:
            arr, c, size = _decode(files[i], prep)
            _check(files[i], files[0], (c, size), (c0, size0), prep)
            out[i] = arr

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for done in [pool.submit(work, idx) for idx in chunks]:
            done.result()  # chunks are in file order, so the first bad file is the one reported
    return out


def _cache_key(folder: Path, files: list[Path], prep: Preprocess) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, str(folder.resolve()), prep.describe()]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _open_cached(npy: Path, meta: dict) -> np.ndarray:
    mm = np.load(npy, mmap_mode="r")
    if list(mm.shape) != meta["shape"] or mm.dtype != np.uint8:
        raise ValueError("cached array does not match its description")
    if mm.nbytes <= ram_budget():
        return np.array(mm)
    log.info("%s: %.1f GB exceeds the RAM budget, memory-mapped", npy, mm.nbytes / 1e9)
    return np.load(npy, mmap_mode="c")  # copy-on-write: writable for torch.from_numpy, the file never changes


def _in_memory(files: list[Path], prep: Preprocess) -> np.ndarray:
    return _decode_into(files, prep, lambda shape: np.empty(shape, np.uint8))


def _decode_to_cache(files: list[Path], prep: Preprocess, npy: Path) -> list[int]:
    """Decode straight into a memory-mapped .npy at a temp name, then rename it to `npy`; returns the shape."""
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
    try:
        mm = _decode_into(files, prep, lambda shape: np.lib.format.open_memmap(tmp, "w+", np.uint8, shape))
        mm.flush()
        shape = list(mm.shape)
        del mm
        os.replace(tmp, npy)
        return shape
    finally:
        tmp.unlink(missing_ok=True)


def decode_folder(
    folder: Path, prep: Preprocess | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], bool, str | None]:
    """(images uint8 [N, C, H, W], labels, class names, labelled, fingerprint or None) of an image folder."""
    from gan_core.datasets import content_fingerprint

    prep = prep or Preprocess()
    files, labels, classes, labelled = scan(folder)
    root = cache_dir()
    if root is None:
        return _in_memory(files, prep), labels, classes, labelled, None
    stem = "-".join(folder.resolve().parts[-2:]) + f"-{_cache_key(folder, files, prep)}"
    npy, desc = root / f"{stem}.npy", root / f"{stem}.json"
    try:
        meta = json.loads(desc.read_text())
        return _open_cached(npy, meta), labels, classes, labelled, meta["fingerprint"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        root.mkdir(parents=True, exist_ok=True)
        shape = _decode_to_cache(files, prep, npy)
        fp = content_fingerprint(np.load(npy, mmap_mode="r"), labels)
        meta = {"folder": str(folder.resolve()), "files": len(files), "shape": shape, "fingerprint": fp,
                "preprocess": prep.describe(), "version": CACHE_VERSION}  # fmt: skip
        atomic_write_bytes(desc, (json.dumps(meta, indent=1) + "\n").encode())
        return _open_cached(npy, meta), labels, classes, labelled, fp
    except OSError as e:  # a read-only or full cache only costs speed
        log.info("cannot use the data cache %s (%s); decoding into memory", root, e)
        return _in_memory(files, prep), labels, classes, labelled, None
