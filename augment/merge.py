"""Join shard outputs into one dataset, byte-identical to what one machine running the job writes.

Shards must hold the same job (equal job.json); each chunk is taken from the first folder that
has it done; a chunk that no folder has is reported by its image range, and nothing is finalized.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from augment.errors import AugmentError
from augment.job import JobResult, finalize
from augment.plan import chunk_range, num_chunks
from augment.source import job_labels
from augment.state import complete_path, done_chunks, done_path, os_error, prepare_output, read_job
from augment.writers import make_writer
from gan_core.fileio import atomic_open


def _ranges(chunks: list[int]) -> str:
    out, start = [], None
    for k, c in enumerate(chunks):
        start = c if start is None else start
        if k + 1 == len(chunks) or chunks[k + 1] != c + 1:
            out.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ", ".join(out)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fsrc, atomic_open(dst, fsync=False) as fdst:
        shutil.copyfileobj(fsrc, fdst, 1 << 20)


def merge_outputs(sources: list[str | Path], out: str | Path | None = None) -> JobResult:
    """Merge shard folders into `out` (default: the single source, finalized in place)."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise AugmentError("merge: give at least one shard folder")
    if out is None:
        if len(sources) != 1:
            raise AugmentError(
                "out: merging several folders needs --out (the folder to write the dataset to)"
            )
        out = sources[0]
    out = Path(out)
    jobs = []
    for s in sources:
        if not s.is_dir():
            raise AugmentError(f"{s}: no such folder")
        job = read_job(s)
        if job is None:
            raise AugmentError(f"{s}: not an augmentation output (no job.json)")
        jobs.append(job)
    cfg = jobs[0]
    for s, job in zip(sources[1:], jobs[1:], strict=True):
        if job != cfg:
            raise AugmentError(
                f"{s}: holds a different job than {sources[0]} ({'; '.join(cfg.differences(job))})"
            )
    t0 = time.perf_counter()
    n_chunks = num_chunks(cfg.total, cfg.chunk_size)
    have = {s: done_chunks(s) for s in sources}
    missing = [c for c in range(n_chunks) if not any(c in h for h in have.values())]
    if missing:
        first = chunk_range(missing[0], cfg.total, cfg.chunk_size)
        raise AugmentError(
            f"merge: chunks {_ranges(missing)} of {n_chunks} are in none of the folders (first missing images "
            f"{first.start}..{first.stop - 1}); run the shards that own them, then merge again"
        )
    prepare_output(out, cfg)
    writer = make_writer(cfg, out)
    labels_all = job_labels(cfg)
    copied = 0
    out_done = done_chunks(out)
    try:
        for c in range(n_chunks):
            if c in out_done:
                continue
            src = next(s for s in sources if c in have[s])
            idx = chunk_range(c, cfg.total, cfg.chunk_size)
            lab = labels_all[idx.start : idx.stop]
            for a, b in zip(
                make_writer(cfg, src).chunk_paths(c, idx, lab), writer.chunk_paths(c, idx, lab), strict=True
            ):
                _copy(a, b)
            _copy(done_path(src, c), done_path(out, c))
            copied += len(idx)
    except OSError as e:
        raise os_error(out, "merged chunks", e) from None
    final = [] if complete_path(out).exists() else finalize(out, cfg, writer, cleanup=True)
    return JobResult(out, cfg, 0, 1, cfg.total, copied, time.perf_counter() - t0, True, final, "merge")
