"""service.bulk's process: it ignores the signals the server handles and ends with its worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from service.local_server import REPO

HOLD_A_POOL = (
    "import sys, time\n"
    "from service.bulk import BulkWork\n"
    "work = BulkWork(1)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_the_bulk_process_survives_sigterm_and_ends_when_its_worker_is_killed():
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_POOL], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "ready"
        pool = [
            p
            for p in psutil.Process(worker.pid).children()
            if "multiprocessing.spawn" in " ".join(p.cmdline())
        ]
        assert len(pool) == 1
        os.kill(pool[0].pid, signal.SIGTERM)  # as `bentoml serve` signals the process group
        os.kill(pool[0].pid, signal.SIGINT)  # as Ctrl-C in a terminal does
        _, alive = psutil.wait_procs(pool, timeout=1.5)
        assert alive == pool  # still there for the requests being drained
        worker.kill()  # the worker gone without shutting its pool down
        worker.wait()
        _, alive = psutil.wait_procs(pool, timeout=5)
        assert alive == []  # not left behind as an orphan
    finally:
        worker.kill()
        worker.wait()
