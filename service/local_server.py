"""Run a real `bentoml serve` of a models folder on a free loopback port, for tests and benchmarks.

Loopback only, a process group of its own (so the workers die with it), and readiness taken from
`/readyz`, which the service answers only after every model is loaded and warmed up. Each server
gets its own BENTOML_HOME (BentoML keeps the workers' Prometheus files there and wipes them when
a server starts, so two servers sharing one would mix and erase each other's metrics), and its
output goes to a file (a pipe nobody reads blocks a server that logs a lot).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, exited: Callable[[], str | None] = lambda: None) -> None:
    """Poll `url`/readyz until it answers 200; RuntimeError with exited()'s text once that is not
    None (the server is gone), or after `timeout` seconds. Also used for a served container."""
    deadline = time.monotonic() + timeout
    while True:
        if (gone := exited()) is not None:
            raise RuntimeError(gone)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: service not ready after {timeout:.0f} s")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


@dataclass
class LocalServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def workers(self) -> list[psutil.Process]:
        """The server's API worker processes (not the arbiter, not their bulk processes)."""
        tree = psutil.Process(self.process.pid).children(recursive=True)
        return [p for p in tree if "_bentoml_impl.worker" in " ".join(p.cmdline())]

    def worker_rss(self) -> int:
        """Resident bytes of the API workers together (what a flood would grow)."""
        return sum(p.memory_info().rss for p in self.workers())


@contextmanager
def local_serve(models_dir: str | os.PathLike, *args, **options) -> Iterator[str]:
    """Yield the base URL of a ready server (local_server's arguments); stop it on exit."""
    with local_server(models_dir, *args, **options) as server:
        yield server.url


@contextmanager
def local_server(
    models_dir: str | os.PathLike,
    threads: int = 1,
    workers: int = 1,
    ready_timeout: float = 120,
    cwd: str | os.PathLike = REPO,
    env: dict[str, str] | None = None,
    log_path: str | os.PathLike | None = None,
) -> Iterator[LocalServer]:
    """Yield a ready server (its URL, process and log); stop it (SIGTERM, then SIGKILL) on exit.

    cwd: the folder holding the service's packages (the repo, or a built bento's src/); env: extra
    variables; log_path: where the server's output goes (default: a temporary file).
    """
    with tempfile.TemporaryDirectory(prefix="gan-serve-") as home:
        log_path = Path(log_path or Path(home) / "serve.log")
        with open(log_path, "wb") as out:
            yield from _serve(models_dir, threads, workers, ready_timeout, cwd, env, home, out, log_path)


def _serve(
    models_dir, threads, workers, ready_timeout, cwd, env, home, out, log_path, tries: int = 3
) -> Iterator[LocalServer]:
    env = {**os.environ, "GAN_MODELS_DIR": str(models_dir), "GAN_ORT_THREADS": str(threads), "GAN_WORKERS": str(workers),
           "BENTOML_DO_NOT_TRACK": "true", "ORT_DISABLE_TELEMETRY": "1", "BENTOML_HOME": home, **(env or {})}  # fmt: skip
    for attempt in range(tries):
        port = free_port()
        cmd = [sys.executable, "-m", "bentoml", "serve", "service.app:GeneratorService"]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"

        def exited(proc=proc) -> str | None:
            if proc.poll() is None:
                return None
            tail = Path(log_path).read_bytes().decode(errors="replace")[-2000:]
            return f"bentoml serve exited with {proc.returncode}: {tail}"

        try:
            wait_ready(url, ready_timeout, exited)
            break
        except RuntimeError as e:
            _stop(proc)
            # the port was free when picked and taken before BentoML bound it (seen once in a full CI run,
            # by one of its own sockets): another port, up to `tries` times
            if "Address already in use" not in str(e) or attempt == tries - 1:
                raise
    try:
        yield LocalServer(url, proc, log_path)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it is still there after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def generating(url: str) -> float:
    """/generate requests the server at `url` is answering now (service.metrics' gauge)."""
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith('gan_http_requests_in_progress{route="/generate"} '):
            return float(line.split()[-1])
    return 0.0


def bulk_requests_in_flight(
    url: str, n: int, timeout: float = 60, wait: float = 10
) -> tuple[list[threading.Thread], list[int | str]]:
    """n requests of 1,024 images (npz: made in the worker's bulk process) on threads of their own, returned
    once the server is answering all n (or `wait` seconds passed), for a test of what a stop does to them.
    The list fills with each answer's status code, or the client error's name, as they end."""
    answers: list[int | str] = []

    def bulk() -> None:
        try:
            r = httpx.post(url + "/generate", json={"count": 1024, "format": "npz"}, timeout=timeout)
            answers.append(r.status_code)
        except httpx.HTTPError as e:
            answers.append(type(e).__name__)

    threads = [threading.Thread(target=bulk) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + wait
    while generating(url) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    return threads, answers
