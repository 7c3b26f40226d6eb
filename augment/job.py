"""Run one augmentation job (or one shard of it): plan, generate chunk by chunk, write, finalize.

Generation of chunk k+1 overlaps the writing of chunk k (ORT and the PNG/zlib encoders release the
GIL). A chunk is marked done (its manifest lines, written last, temp + rename) only after all its
files are written, so a killed or failed run keeps every finished chunk and a rerun does only
what is missing.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augment.backends import open_backend
from augment.config import JobConfig
from augment.errors import AugmentError
from augment.manifest import manifest_lines
from augment.plan import chunk_range, num_chunks, shard_chunks
from augment.request import resolve_job
from augment.source import TranslateBackend, job_labels, open_source, resolve_translate_job
from augment.state import complete_path, done_chunks, done_path, os_error, prepare_output
from augment.writers import Writer, make_writer
from gan_core.cpus import available_cpus
from gan_core.fileio import atomic_open, atomic_write_bytes

MAX_INFLIGHT_CHUNKS = 2


def default_workers() -> int:
    """Encode/write threads: one per core (more only fight over the GIL), at most 4."""
    return min(4, available_cpus())


@dataclass
class JobResult:
    out: Path
    config: JobConfig
    shard: int
    num_shards: int
    planned: int  # images this shard owns
    generated: int  # images made by this run (the rest were done by an earlier run)
    seconds: float
    complete: bool  # every chunk of the job is done and the final files are written
    final_files: list[Path]
    backend: str

    @property
    def images_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def _progress(total: int, initial: int, enabled: bool, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional in the serving container
        return None
    if not enabled:
        return None
    return tqdm(
        total=total, initial=initial, desc=desc, unit="img", unit_scale=True, mininterval=0.5, smoothing=0.1
    )


def finalize(out: Path, cfg: JobConfig, writer: Writer, cleanup: bool) -> list[Path]:
    """Every chunk is done: write the manifest and the format's final files, then the complete marker."""
    k = num_chunks(cfg.total, cfg.chunk_size)
    try:
        files = writer.finalize(k)
        with atomic_open(out / "manifest.jsonl") as f:
            for c in range(k):
                f.write(done_path(out, c).read_bytes())
        atomic_write_bytes(complete_path(out), (cfg.config_hash() + "\n").encode())
    except OSError as e:
        raise os_error(out, "the final files", e) from None
    if cleanup:
        writer.cleanup(k)
    return [*files, out / "manifest.jsonl"]


def execute(
    cfg: JobConfig,
    out: Path,
    backend,
    shard: int = 0,
    num_shards: int = 1,
    workers: int | None = None,
    progress: bool = False,
) -> JobResult:
    """Do the shard's missing chunks of `cfg` into `out` with `backend` (already opened)."""
    out = Path(out)
    todo, planned, remaining = plan_run(cfg, out, shard, num_shards)
    source = open_source(cfg.source) if cfg.source is not None else None
    labels_all = job_labels(cfg, source)
    if source is not None:
        backend = TranslateBackend(backend, source)
    writer = make_writer(cfg, out)
    desc = "augment" if num_shards == 1 else f"augment {shard}/{num_shards}"
    bar = _progress(planned, planned - remaining, progress and bool(todo), desc)
    t0 = time.perf_counter()
    generated = 0
    pool = ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="augment-write")
    inflight: deque = deque()

    def finish(item) -> None:
        nonlocal generated
        c, idx, lab, futures = item
        mark_done(cfg, out, writer, c, idx, lab, futures)
        generated += len(idx)
        if bar is not None:
            bar.update(len(idx))

    try:
        for c in todo:
            idx, lab, images = generate_chunk(cfg, backend, labels_all, c)
            inflight.append((c, idx, lab, writer.submit(pool, c, idx, lab, images)))
            while len(inflight) > MAX_INFLIGHT_CHUNKS - 1:
                finish(inflight.popleft())
        while inflight:
            finish(inflight.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    return close_job(
        cfg,
        out,
        writer,
        (shard, num_shards, planned, generated, seconds),
        getattr(backend, "description", ""),
    )


RAY_MISSING = "--engine ray needs Ray: pip install 'gan-service[scale]' (or pip install 'ray[data]')"


def execute_ray(
    cfg: JobConfig,
    out: Path,
    model: Path,
    shard: int = 0,
    num_shards: int = 1,
    *,
    address: str | None = None,
    batch_size: int = 256,
    threads: int | None = None,
    actors: int | None = None,
    progress: bool = False,
) -> JobResult:
    """Do the shard's missing chunks of `cfg` on a Ray cluster (augment/ray_engine.py); the driver
    plans, the actors make and mark chunks, the driver finalizes."""
    out = Path(out).resolve()
    todo, planned, remaining = plan_run(cfg, out, shard, num_shards)
    writer = make_writer(cfg, out)
    t0, generated, where = time.perf_counter(), 0, "Ray (nothing to do)"
    if todo:
        # A driver pointed at something that accepts TCP but is no Ray head gives up after this many
        # one-second tries (Ray's default is 20), so a wrong --address fails within seconds; a Ray
        # started here keeps Ray's default (its own head may take longer to come up on a busy box).
        if address or os.environ.get("RAY_ADDRESS"):
            os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "5")
        try:
            from augment import ray_engine
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "ray":
                raise
            raise AugmentError(RAY_MISSING) from None
        bar = _progress(planned, planned - remaining, progress, "augment (ray)")

        def on_chunk(n: int) -> None:
            nonlocal generated
            generated += n
            if bar is not None:
                bar.update(n)

        try:
            where = ray_engine.run_chunks(
                cfg, out, model, todo, address=address, batch_size=batch_size, threads=threads or 1,
                actors=actors, on_chunk=on_chunk,
            )  # fmt: skip
        except KeyboardInterrupt:  # Ray is shut down by now; say what is kept instead of a traceback
            raise AugmentError(
                f"interrupted: the finished chunks in {out} are kept; rerun the same command to resume"
            ) from None
        finally:
            if bar is not None:
                bar.close()
    run = (shard, num_shards, planned, generated, time.perf_counter() - t0)
    return close_job(cfg, out, writer, run, where)


def plan_run(cfg: JobConfig, out: Path, shard: int, num_shards: int) -> tuple[list[int], int, int]:
    """Prepare OUT and list the shard's chunks not yet done (their markers decide), with the images
    the shard owns and those still to make."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise AugmentError(
            f"shard: must be in 0..num_shards-1 with num_shards >= 1, got shard {shard} of {num_shards}"
        )
    prepare_output(out, cfg)
    mine = shard_chunks(num_chunks(cfg.total, cfg.chunk_size), shard, num_shards)
    done = done_chunks(out)
    todo = [c for c in mine if c not in done]
    planned = sum(len(chunk_range(c, cfg.total, cfg.chunk_size)) for c in mine)
    remaining = sum(len(chunk_range(c, cfg.total, cfg.chunk_size)) for c in todo)
    return todo, planned, remaining


def generate_chunk(
    cfg: JobConfig, backend, labels_all: np.ndarray, c: int
) -> tuple[range, np.ndarray, np.ndarray]:
    """Chunk c's indices, labels and images (checked to be what the job's writers take)."""
    idx = chunk_range(c, cfg.total, cfg.chunk_size)
    lab = labels_all[idx.start : idx.stop]
    images = backend.generate(
        cfg.seed, idx, lab if cfg.conditional else None, cfg.truncation, cfg.image_codes(lab)
    )
    ch, h, w = cfg.image_shape
    if images.dtype != np.uint8 or images.shape != (len(idx), h, w, ch):
        raise AugmentError(
            f"model {cfg.model_name!r} returned {images.dtype} {images.shape}; expected uint8 {(len(idx), h, w, ch)}"
        )
    return idx, lab, images


def mark_done(
    cfg: JobConfig, out: Path, writer: Writer, c: int, idx: range, lab: np.ndarray, futures
) -> None:
    """Wait for chunk c's files, then write its manifest lines: the marker that it is done."""
    wait(futures)
    for f in futures:
        exc = f.exception()
        if isinstance(exc, OSError):
            raise os_error(out, f"chunk {c}", exc) from None
        if exc is not None:
            raise exc
    lines = manifest_lines(cfg, idx, lab, writer.files(idx, lab))
    try:
        atomic_write_bytes(done_path(out, c), ("\n".join(lines) + "\n").encode())
    except OSError as e:
        raise os_error(out, f"chunk {c}", e) from None


def close_job(cfg: JobConfig, out: Path, writer: Writer, run: tuple, backend: str) -> JobResult:
    """After a run: finalize when every chunk of the job is done (the markers decide), and report.

    run: (shard, num_shards, planned, generated, seconds) of this run.
    """
    shard, num_shards = run[0], run[1]
    complete, final = False, []
    if done_chunks(out) >= set(range(num_chunks(cfg.total, cfg.chunk_size))):
        complete = True
        if not complete_path(out).exists():
            final = finalize(out, cfg, writer, cleanup=num_shards == 1)
    return JobResult(out, cfg, shard, num_shards, *run[2:], complete, final, backend)


def run_job(
    model: str,
    out: str | Path,
    *,
    per_class: int | None = None,
    total: int | None = None,
    class_dist=None,
    classes=None,
    data: str | None = None,
    seed: int = 0,
    truncation: float | None = None,
    format: str = "folder",
    chunk_size: int = 1000,
    batch_size: int = 256,
    shard: int = 0,
    num_shards: int = 1,
    threads: int | None = None,
    workers: int | None = None,
    concurrency: int = 4,
    progress: bool = False,
    transport=None,
    codes: dict | None = None,
    label_from: str | None = None,
    translate: str | None = None,
    split: str = "train",
    engine: str = "local",
    address: str | None = None,
    actors: int | None = None,
) -> JobResult:
    """Open the model (`.onnx` path or `http://host:port#name`), resolve the job, run this shard of it.

    translate: a dataset whose `split` is translated image by image (an image-to-image model), labels kept.
    engine: 'local' (this process) or 'ray' (actors of the Ray cluster at `address`, `threads` CPUs each).
    """
    if chunk_size < 1:
        raise AugmentError(f"chunk_size: must be >= 1, got {chunk_size}")
    if engine not in ("local", "ray"):
        raise AugmentError(f"engine: must be local or ray, got {engine!r}")
    if engine == "ray" and str(model).startswith(("http://", "https://")):
        raise AugmentError(
            "engine: ray runs the model in the cluster's actors; give an .onnx path, not a URL"
        )
    backend = open_backend(  # the ray engine's driver only reads the card here: one thread
        str(model), batch_size=batch_size, threads=1 if engine == "ray" else threads, concurrency=concurrency,
        transport=transport,
    )  # fmt: skip
    try:
        if translate is not None:
            asked = {"per_class": per_class, "total": total, "class_dist": class_dist, "classes": classes,
                     "truncation": truncation, "codes": codes, "label_from": label_from}  # fmt: skip
            extra = [k for k, v in asked.items() if v is not None] + (["seed"] if seed else [])
            if extra:
                raise AugmentError(
                    f"{extra[0]}: translate mode translates every image of the dataset; omit it"
                )
            cfg = resolve_translate_job(
                backend.card,
                backend.model_sha256,
                translate,
                split=split,
                format=format,
                chunk_size=chunk_size,
            )
        else:
            if backend.card.input_of_kind("image") is not None:
                raise AugmentError(
                    f"model {backend.card.name!r} translates images: give --translate DATASET (images to translate)"
                )
            cfg = resolve_job(
                backend.card, backend.model_sha256, per_class=per_class, total=total, class_dist=class_dist, classes=classes,
                data=data, seed=seed, truncation=truncation, format=format, chunk_size=chunk_size, codes=codes,
                label_from=label_from,
            )  # fmt: skip
        if engine == "ray":
            return execute_ray(
                cfg, Path(out), Path(model), shard, num_shards, address=address, batch_size=batch_size,
                threads=threads, actors=actors, progress=progress,
            )  # fmt: skip
        return execute(cfg, Path(out), backend, shard, num_shards, workers, progress)
    finally:
        backend.close()
