"""service.fatal: a worker that cannot serve ends its serving process with exit status 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from tests.service.test_http_serve import REPO

# A stand-in for `bentoml serve`: arms service.fatal, starts a "worker", and on SIGTERM shuts down
# gracefully with status 0, as BentoML's arbiter does; then sleeps, as a server would.
SERVER = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    from service import fatal
    fatal.arm()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    worker = "from service import fatal; fatal.stop_server('GAN_MODELS_DIR: no usable model in /m (x)')"
    subprocess.Popen([sys.executable, "-c", worker])
    time.sleep(60)
    """
)


def test_a_failing_worker_stops_the_server_with_one_line_and_status_2():
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", SERVER], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30  # stopped, not left waiting
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "gan_service: cannot start: GAN_MODELS_DIR: no usable model in /m (x)"
    ]


def test_an_armed_server_without_failures_keeps_its_status():
    code = "from service import fatal; fatal.arm(); raise SystemExit(0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
