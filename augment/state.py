"""The output folder and its resume state.

    OUT/job.json                     the full job config (+ hash): same bytes for every shard
    OUT/manifest.jsonl               written when every chunk is done
    OUT/train/<class>/<index>.png    folder format  |  OUT/train.npz  |  OUT/train-*-idx*-ubyte.gz
    OUT/.augment/chunks/chunk-K.npy  npz / idx formats: a chunk's images until the final file is built
    OUT/.augment/done/chunk-K.jsonl  the chunk's manifest lines; written last, so it marks the chunk done
    OUT/.augment/complete            the final files are built

The state folder is hidden so the image-folder layout stays loadable (OUT/train is the split).
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from augment.config import JobConfig
from augment.errors import AugmentError
from gan_core.fileio import atomic_write_bytes

STATE = ".augment"
DONE_RE = re.compile(r"^chunk-(\d+)\.jsonl$")


def state_dir(out: Path) -> Path:
    return Path(out) / STATE


def done_path(out: Path, chunk: int) -> Path:
    return state_dir(out) / "done" / f"chunk-{chunk:06d}.jsonl"


def chunk_data_path(out: Path, chunk: int) -> Path:
    return state_dir(out) / "chunks" / f"chunk-{chunk:06d}.npy"


def complete_path(out: Path) -> Path:
    return state_dir(out) / "complete"


def done_chunks(out: Path) -> set[int]:
    d = state_dir(out) / "done"
    if not d.is_dir():
        return set()
    return {int(m.group(1)) for p in d.iterdir() if (m := DONE_RE.match(p.name))}


def os_error(out: Path, what: str, e: OSError) -> AugmentError:
    reason = "disk full" if e.errno == errno.ENOSPC else (e.strerror or type(e).__name__)
    return AugmentError(
        f"{out}: cannot write {what} ({reason}); completed chunks are kept, rerun the same command to resume"
    )


def read_job(out: Path) -> JobConfig | None:
    p = Path(out) / "job.json"
    if not p.is_file():
        return None
    try:
        return JobConfig.from_file_bytes(p.read_bytes())
    except (ValueError, KeyError, TypeError) as e:
        raise AugmentError(f"{p}: not a readable augmentation job file ({str(e).splitlines()[0]})") from None


def prepare_output(out: Path, cfg: JobConfig) -> None:
    """Create OUT (or accept it when it holds this very job); refuse a different job or a foreign folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AugmentError(f"out: {out} exists and is not a folder")
    existing = read_job(out) if out.is_dir() else None
    if existing is not None and existing != cfg:
        diffs = "; ".join(existing.differences(cfg))
        raise AugmentError(
            f"out: {out} holds a different job ({diffs}); use a new --out or the same settings"
        )
    # job.json and its temp file may come from a shard starting beside this one in a shared folder
    if (
        existing is None
        and out.is_dir()
        and any(
            p.name not in (STATE, "job.json") and not p.name.startswith(".job.json.") for p in out.iterdir()
        )
    ):
        raise AugmentError(f"out: {out} is not empty and holds no job.json; give a new or empty folder")
    try:
        (state_dir(out) / "done").mkdir(parents=True, exist_ok=True)
        (state_dir(out) / "chunks").mkdir(exist_ok=True)
        if existing is None:
            atomic_write_bytes(out / "job.json", cfg.to_file_bytes())
    except OSError as e:
        raise AugmentError(f"out: cannot write to {out} ({e.strerror or e})") from None
