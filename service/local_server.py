"""Run a real `bentoml serve` of a models folder on a free loopback port, for tests and benchmarks.

Loopback only, a process group of its own (so the workers die with it), and readiness taken from
`/readyz`, which the service answers only after every model is loaded and warmed up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_serve(
    models_dir: str | os.PathLike,
    threads: int = 1,
    workers: int = 1,
    ready_timeout: float = 120,
    cwd: str | os.PathLike = REPO,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Yield the base URL of a ready server; stop it (SIGTERM, then SIGKILL) on exit.

    cwd: the folder holding the service's packages (the repo, or a built bento's src/); env: extra variables.
    """
    port = free_port()
    env = {**os.environ, "GAN_MODELS_DIR": str(models_dir), "GAN_ORT_THREADS": str(threads), "GAN_WORKERS": str(workers),
           "BENTOML_DO_NOT_TRACK": "true", "ORT_DISABLE_TELEMETRY": "1", **(env or {})}  # fmt: skip
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service.app:GeneratorService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve exited with {proc.returncode}: {proc.stdout.read().decode(errors='replace')[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: service not ready after {ready_timeout:.0f} s")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
