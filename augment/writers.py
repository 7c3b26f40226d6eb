"""Dataset writers: image folder (PNG per image), .npz, MNIST-style gzip IDX.

A chunk is written in a thread pool (PNG encoding and file writes release the GIL); the job marks
it done only after all its futures succeed. npz and IDX keep each chunk as a .npy until every chunk
is done, then stream them into one deterministic file (zip entries dated 1980-01-01, gzip mtime 0),
so the bytes never depend on when, where or in how many pieces the job ran.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import threading
import zipfile
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

from augment.config import JobConfig
from augment.state import chunk_data_path
from gan_core.fileio import atomic_open, write_file_fast
from gan_core.idx import IMAGE_MAGIC, LABEL_MAGIC, idx_header
from gan_core.imaging import png_bytes

PNG_GROUP = 64  # images per pool task: big enough to amortise the task, small enough to spread
IDX_IMAGES, IDX_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
NPZ_FILE = "train.npz"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$")
# Test hook: SIGKILL this process once it has written this many images (simulates a killed job);
# with KILL_ONCE_ENV (a path) only the first process to create that file dies (a killed Ray worker
# whose restarted actor then finishes the job).
KILL_AFTER_ENV = "GAN_AUGMENT_TEST_KILL_AFTER_IMAGES"
KILL_ONCE_ENV = "GAN_AUGMENT_TEST_KILL_ONCE"


class _KillHook:
    def __init__(self) -> None:
        v = os.environ.get(KILL_AFTER_ENV)
        self.limit = int(v) if v else None
        self.count = 0
        self.lock = threading.Lock()

    def written(self, n: int) -> None:
        if self.limit is None:
            return
        with self.lock:
            self.count += n
            if self.count >= self.limit and self._first():
                os.kill(os.getpid(), signal.SIGKILL)

    @staticmethod
    def _first() -> bool:
        once = os.environ.get(KILL_ONCE_ENV)
        if not once:
            return True
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


def class_folder(cfg: JobConfig, label: int) -> str:
    """The class name when it is a safe folder name, else the label id."""
    name = cfg.class_names[label]
    return name if SAFE_NAME.match(name) else str(label)


class Writer:
    """Base: `submit` a chunk's images to a pool, `finalize` once every chunk is done."""

    def __init__(self, cfg: JobConfig, out: Path):
        self.cfg, self.out = cfg, Path(out)
        self.hook = _KillHook()

    def files(self, indices: range, labels: np.ndarray) -> list[str] | None:
        """Paths (relative to OUT) of the chunk's image files, for the manifest; None = rows of one array."""
        return None

    def chunk_paths(self, chunk: int, indices: range, labels: np.ndarray) -> list[Path]:
        """Files a chunk leaves in OUT before finalize (what merge copies between folders)."""
        return [chunk_data_path(self.out, chunk)]

    def submit(
        self, pool: Executor, chunk: int, indices: range, labels: np.ndarray, images: np.ndarray
    ) -> list[Future]:
        return [pool.submit(self._write_npy, chunk, images)]

    def _write_npy(self, chunk: int, images: np.ndarray) -> None:
        with atomic_open(chunk_data_path(self.out, chunk)) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(images), allow_pickle=False)
        self.hook.written(len(images))

    def finalize(self, n_chunks: int) -> list[Path]:
        return []

    def cleanup(self, n_chunks: int) -> None:
        for k in range(n_chunks):
            chunk_data_path(self.out, k).unlink(missing_ok=True)

    def _chunks(self, n_chunks: int):
        for k in range(n_chunks):
            yield np.load(chunk_data_path(self.out, k), allow_pickle=False)


class FolderWriter(Writer):
    """OUT/train/<class>/<global index:08d>.png: the layout of load_dataset and torchvision ImageFolder."""

    def __init__(self, cfg: JobConfig, out: Path):
        super().__init__(cfg, out)
        self._dirs_made = False

    def files(self, indices: range, labels: np.ndarray) -> list[str]:
        folders = [class_folder(self.cfg, c) for c in range(len(self.cfg.class_names))]
        return [f"train/{folders[lab]}/{i:08d}.png" for i, lab in zip(indices, labels.tolist(), strict=True)]

    def chunk_paths(self, chunk: int, indices: range, labels: np.ndarray) -> list[Path]:
        return [self.out / f for f in self.files(indices, labels)]

    def submit(
        self, pool: Executor, chunk: int, indices: range, labels: np.ndarray, images: np.ndarray
    ) -> list[Future]:
        if not self._dirs_made:
            for label in self.cfg.classes:
                (self.out / "train" / class_folder(self.cfg, label)).mkdir(parents=True, exist_ok=True)
            self._dirs_made = True
        root = os.fspath(self.out)
        paths = [f"{root}/{f}" for f in self.files(indices, labels)]
        return [
            pool.submit(self._write_pngs, paths[a : a + PNG_GROUP], images[a : a + PNG_GROUP])
            for a in range(0, len(paths), PNG_GROUP)
        ]

    def _write_pngs(self, paths: list[str], images: np.ndarray) -> None:
        for path, image in zip(paths, images, strict=True):
            write_file_fast(path, png_bytes(image, compress_level=1))
        self.hook.written(len(paths))

    def cleanup(self, n_chunks: int) -> None:
        pass


def _stream_array(f, chunks, shape: tuple[int, ...]) -> None:
    """An .npy (header + raw C-order bytes) of uint8 `shape`, fed chunk by chunk."""
    np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
    for arr in chunks:
        f.write(np.ascontiguousarray(arr, dtype=np.uint8).tobytes())


class NpzWriter(Writer):
    """OUT/train.npz: images uint8 [N, H, W] (or [N, H, W, C] when C > 1), labels, indices, class_names."""

    def finalize(self, n_chunks: int) -> list[Path]:
        cfg = self.cfg
        c, h, w = cfg.image_shape
        shape = (cfg.total, h, w) if c == 1 else (cfg.total, h, w, c)
        from augment.source import job_labels

        small = {
            "labels": job_labels(cfg),
            "indices": np.arange(cfg.total, dtype=np.int64),
            "class_names": np.array(cfg.class_names),
        }
        path = self.out / NPZ_FILE
        with atomic_open(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
            with zf.open(_zip_info("images.npy"), "w", force_zip64=True) as f:
                _stream_array(f, (a.reshape(-1) for a in self._chunks(n_chunks)), shape)
            for name, arr in small.items():
                with zf.open(_zip_info(f"{name}.npy"), "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, arr, allow_pickle=False)
        return [path]


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED
    return info


class IdxWriter(Writer):
    """OUT/train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz, as gan_core.idx.read_idx loads them."""

    def finalize(self, n_chunks: int) -> list[Path]:
        from augment.source import job_labels

        cfg = self.cfg
        _, h, w = cfg.image_shape
        img_path, lbl_path = self.out / IDX_IMAGES, self.out / IDX_LABELS
        with (
            atomic_open(img_path) as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        ):
            gz.write(idx_header(IMAGE_MAGIC, (cfg.total, h, w)))
            for arr in self._chunks(n_chunks):
                gz.write(np.ascontiguousarray(arr).tobytes())
        labels = job_labels(cfg).astype(np.uint8)
        with (
            atomic_open(lbl_path) as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        ):
            gz.write(idx_header(LABEL_MAGIC, (cfg.total,)) + labels.tobytes())
        return [img_path, lbl_path]


def make_writer(cfg: JobConfig, out: Path) -> Writer:
    return {"folder": FolderWriter, "npz": NpzWriter, "idx": IdxWriter}[cfg.format](cfg, out)
