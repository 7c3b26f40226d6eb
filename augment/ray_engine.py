"""`--engine ray`: the job's missing chunks as a Ray Data dataset, one block per chunk, made by actors.

Each actor holds one ONNX Runtime session (intra-op threads = the actor's num_cpus) on the model bytes
the driver put in the object store, so no node needs the model's path; it writes its chunks through
the job's own writers and marks each done exactly as the local engine does. The output folder must be
the same path on every node (shared storage): each actor checks for a token file the driver wrote there
before taking any chunk, so a node that sees another folder is refused up front. The markers, not Ray,
decide what is done: a chunk whose actor died is retried by Ray (same bytes, temp + rename), and a
rerun after a crash or Ctrl-C makes only the chunks without a marker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import ray

from augment.config import JobConfig
from augment.errors import AugmentError
from augment.state import state_dir
from gan_core.errors import UserError, one_line

TOKEN_FILE = "ray-run"
CONNECT_TIMEOUT_S = 5.0


def check_out_visible(out: Path, token: str) -> None:
    """Refuse a node that does not see the driver's output folder (it would write elsewhere)."""
    if not (state_dir(out) / f"{TOKEN_FILE}-{token}").is_file():
        raise AugmentError(
            f"out: {out} is not the driver's folder on node {socket.gethostname()}; with --engine ray "
            "--out must be on storage every node mounts at the same path"
        )


class ChunkMaker:
    """A Ray Data actor: one ORT session and one writer; each call makes and marks whole chunks."""

    def __init__(self, job: bytes, out: str, token: str, model, batch_size: int, threads: int):
        # A user error here is kept and raised by the first call: Ray reports a failed constructor
        # only as an actor death with a traceback in text, a failed call with the exception itself.
        self.error: UserError | None = None
        try:
            self._open(job, out, token, model, batch_size, threads)
        except UserError as e:
            self.error = e

    def _open(self, job: bytes, out: str, token: str, model, batch_size: int, threads: int) -> None:
        from augment.backends import LocalBackend
        from augment.source import TranslateBackend, job_labels, open_source
        from augment.writers import make_writer

        self.cfg, self.out = JobConfig.from_file_bytes(job), Path(out)
        check_out_visible(self.out, token)
        data = ray.get(model[0])
        tmp = tempfile.mkdtemp(prefix="gan-augment-model-")
        try:  # ORT keeps the graph in memory: the node-local copy only lives while the session opens
            path = Path(tmp) / f"{self.cfg.model_name}.onnx"
            path.write_bytes(data)
            self.backend = LocalBackend(path, batch_size=batch_size, threads=threads)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if self.backend.model_sha256 != self.cfg.model_sha256:
            raise AugmentError(
                f"model: the bytes shipped to the actor are not the job's model {self.cfg.model_sha256}"
            )
        source = open_source(self.cfg.source) if self.cfg.source is not None else None
        self.labels = job_labels(self.cfg, source)
        if source is not None:
            self.backend = TranslateBackend(self.backend, source)
        self.writer = make_writer(self.cfg, self.out)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="augment-write")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from augment.job import generate_chunk, mark_done

        if self.error is not None:
            raise self.error
        made = []
        for c in batch["chunk"].tolist():
            idx, lab, images = generate_chunk(self.cfg, self.backend, self.labels, c)
            futures = self.writer.submit(self.pool, c, idx, lab, images)
            mark_done(self.cfg, self.out, self.writer, c, idx, lab, futures)
            made.append(len(idx))
        return {"chunk": batch["chunk"], "images": np.asarray(made, np.int64)}


def _reachable(address: str) -> None:
    """A host:port (or ray://host:port) that accepts no TCP connection is refused within seconds."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise AugmentError(f"address: must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise AugmentError(
            f"address: no Ray cluster answers at {hostport} ({e.strerror or type(e).__name__}); "
            "start one with `ray start --head` or fix --address"
        ) from None


def connect(address: str | None, num_cpus: int) -> str:
    """Join the cluster at `address` (else $RAY_ADDRESS), or start a one-node Ray here; say which."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    kw = dict(logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
    if address is None:
        # "local": a new Ray of its own, never a cluster this machine happens to run
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kw)
        return f"a local Ray ({num_cpus} CPUs)"
    _reachable(address)
    try:
        ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, TimeoutError) as e:
        raise AugmentError(f"address: cannot join the Ray cluster at {address} ({one_line(e)})") from None
    return f"the Ray cluster at {address}"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _subclasses(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_subclasses(c) for c in cls.__subclasses__()))


def user_error_message(e: BaseException) -> str | None:
    """The job's own one-line error inside Ray's wrappers, else None.

    A task's exception reaches the driver as RayTaskError(.cause), but Ray Data re-raises errors of
    map_batches as a UserCodeException that keeps only the remote traceback's text; its last line
    `module.SomeUserError: message` is then the message.
    """
    seen, x = set(), e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, UserError) and not isinstance(x, ray.exceptions.RayError):
            return one_line(x)
        cause = getattr(x, "cause", None)
        x = cause if isinstance(cause, BaseException) else (x.__cause__ or x.__context__)
    names = _subclasses(UserError)
    for line in reversed(ANSI.sub("", str(e)).splitlines()):
        m = re.match(r"^(?:[\w.]+\.)?(\w+): (.+)$", line.strip())
        if m and m.group(1) in names:
            return m.group(2)
    return None


def cluster_plan(actors: int | None, threads: int) -> tuple[int, float]:
    """(actors, GPUs per actor): by default as many actors as the cluster's CPUs hold; one GPU each
    when the cluster has GPUs (ORT then opens CUDA, which Ray's CUDA_VISIBLE_DEVICES scopes)."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if actors is None:
        actors = max(1, int(res.get("CPU", 1)) // threads)
        if gpus:
            actors = min(actors, gpus)
    return actors, 1.0 if gpus else 0.0


@contextlib.contextmanager
def interrupt_latch():
    """Ctrl-C during the Ray loop, never lost: the KeyboardInterrupt the signal raises can land inside Ray
    Data's iterator, which may swallow it and run the job to its end, so the handler also sets this event,
    which the loop checks after each chunk and at its end. Only the main thread may set a signal handler."""
    latch = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield latch
        return

    def handler(signum, frame):
        latch.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield latch
    finally:
        signal.signal(signal.SIGINT, previous)


def run_chunks(
    cfg: JobConfig,
    out: Path,
    model: Path,
    todo: list[int],
    *,
    address: str | None,
    batch_size: int,
    threads: int,
    actors: int | None,
    on_chunk,
) -> str:
    """Make the chunks `todo` on Ray; `on_chunk(images)` after each one is marked. Returns a description."""
    data = Path(model).read_bytes()
    token = secrets.token_hex(16)  # one file per run: drivers of other shards may share the folder
    token_path = state_dir(out) / f"{TOKEN_FILE}-{token}"
    token_path.touch()
    try:
        where = connect(address, num_cpus=max(threads, os.cpu_count() or 1))
        from ray.data import DataContext

        for name in ("ray", "ray.data"):  # Ray Data logs each run, and each error again; the job reports
            logging.getLogger(name).setLevel(logging.CRITICAL)
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        n, gpus = cluster_plan(actors, threads)
        ds = ray.data.from_items([{"chunk": c} for c in todo], override_num_blocks=len(todo)).map_batches(
            ChunkMaker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(n, len(todo))),
            num_cpus=threads,
            num_gpus=gpus,
            fn_constructor_kwargs=dict(
                job=cfg.to_file_bytes(),
                out=str(out),
                token=token,
                model=[ray.put(data)],
                batch_size=batch_size,
                threads=threads,
            ),
        )
        with interrupt_latch() as interrupted:
            try:
                for row in ds.iter_rows():
                    on_chunk(int(row["images"]))
                    if interrupted.is_set():
                        raise KeyboardInterrupt
            except Exception as e:
                message = user_error_message(e)
                if message is None:
                    raise
                raise AugmentError(message) from None
            if interrupted.is_set():
                raise KeyboardInterrupt
        return f"{where}, {n} actors x {threads} CPU{'s' if threads > 1 else ''}" + (
            " + 1 GPU" if gpus else ""
        )
    finally:
        ray.shutdown()
        token_path.unlink(missing_ok=True)
