"""The IDX file format of MNIST-style datasets: reading (gzip or raw, checked) and writing headers.

Reader and writer live together so the format's rules (big-endian dims, magic numbers, uint8
data) are stated once; the dataset loader and the augmentation job's IDX writer both use them.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from gan_core.errors import UserError

IMAGE_MAGIC = 2051  # uint8 data, 3 dimensions
LABEL_MAGIC = 2049  # uint8 data, 1 dimension


class DataError(UserError):
    """Bad dataset input; the message is one line fit to show a user."""


def read_gz_or_raw(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def read_idx(path: str | os.PathLike, expect_magic: int) -> np.ndarray:
    """Read one IDX file (gzip or raw), checking magic number, header and length."""
    path = Path(path)
    data = read_gz_or_raw(path)
    if len(data) < 8:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    magic = int.from_bytes(data[0:4], "big")
    if magic != expect_magic:
        kind = "images" if expect_magic == IMAGE_MAGIC else "labels"
        raise DataError(
            f"{path}: wrong magic number {magic} for an IDX {kind} file (expected {expect_magic})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    got = len(data) - header
    if got != expected:
        raise DataError(
            f"{path}: truncated or padded IDX data: header says {dims} ({expected} bytes), file holds {got}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def idx_header(magic: int, dims: tuple[int, ...]) -> bytes:
    """The header of a uint8 IDX file: magic number then one big-endian uint32 per dimension."""
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)
