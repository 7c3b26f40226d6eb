"""Which model of a models folder is the default: a one-line file in the folder that names it.

A folder of several generators needs its default said by data, not by the order of file names: the
bundle tool (export.bundle) writes this file and the service (service.model_set) reads it, and
GAN_DEFAULT_MODEL still overrides it. Torch-free: both sides import it.
"""

from __future__ import annotations

import os
from pathlib import Path

from gan_core.errors import UserError
from gan_core.fileio import atomic_write_bytes

DEFAULT_FILE = "default-model.txt"  # the default model's name (its card's `name`), one line


def default_file(folder: str | os.PathLike) -> Path:
    return Path(folder) / DEFAULT_FILE


def read_default(folder: str | os.PathLike) -> str | None:
    """The model name the folder's default file gives; None when the folder has no such file."""
    path = default_file(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"{path}: cannot read the default model's name ({getattr(e, 'strerror', None) or e})"
        ) from None
    name = text.strip()
    if not name or "\n" in name:
        raise UserError(f"{path}: must hold one line, the default model's name; got {text[:80]!r}")
    return name


def write_default(folder: str | os.PathLike, name: str) -> Path:
    """Name `name` as the folder's default (temp file + rename)."""
    path = default_file(folder)
    atomic_write_bytes(path, f"{name}\n".encode())
    return path
