"""Crash-safe file writes and file hashing, with the standard library only.

Torch-free on purpose: the training side, the exporter, the service and the augmentation job
(which runs in the serving container without torch) all write through these. A write that fails
(a full disk, a read-only folder) raises FileWriteError: one line naming the file, and since the
data went to a temp file, whatever was at that path before is still there, whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gan_core.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give; mkstemp's 0600 would hide files from other users


class FileWriteError(UserError, OSError):
    """A file that could not be written (one line naming it); still an OSError for callers that
    treat writes as optional (caches)."""

    def __init__(
        self,
        path: str | os.PathLike,
        e: OSError,
        what: str = "write",
        kept: str = "any earlier file there is kept",
    ):
        self.message = f"{path}: cannot {what} ({e.strerror or e}); {kept}"
        super().__init__(self.message)
        self.errno, self.strerror, self.filename = e.errno, e.strerror, os.fspath(path)

    def __str__(self) -> str:  # OSError's would be "[Errno N] strerror: filename"
        return self.message


def write_error(path: str | os.PathLike, e: OSError) -> FileWriteError:
    return e if isinstance(e, FileWriteError) else FileWriteError(path, e)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, fsync: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at `path` only if the block finishes (temp file + rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    with atomic_open(path, fsync) as f:
        f.write(data)


_FAST_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_file_fast(path: str | os.PathLike, data: bytes) -> None:
    """Temp name + rename without fsync, in raw syscalls: for the many small image files of a chunk.

    A killed writer leaves at most a hidden `.NAME.tmp`, never a truncated file under NAME.
    """
    path = os.fspath(path)
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.tmp")
    try:
        fd = os.open(tmp, _FAST_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise write_error(path, e) from None


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
