"""A worker that cannot serve ends the whole `bentoml serve` with exit status 2, not a restart loop.

BentoML's arbiter restarts every worker that exits, so a worker whose models cannot be opened (the
file changed after the serving process checked it, a device only the worker sees) would fail, be
restarted and fail again forever. The serving process arms this module when it imports the service:
it names a file for its workers (GAN_FATAL_FILE, inherited by them) and exits 2 at its end when a
worker wrote there. A failing worker prints its one line, writes it there, asks the serving process
to stop (SIGTERM: the other workers drain) and exits 2.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

ENV = "GAN_FATAL_FILE"


def arm() -> None:
    """In the serving process: exit 2 at the end when a worker reported a fatal error."""
    fd, name = tempfile.mkstemp(prefix="gan-fatal-")
    os.close(fd)
    os.environ[ENV] = name

    def exit_if_reported() -> None:
        path = Path(name)
        try:
            reported = path.read_text()
        except OSError:
            return
        path.unlink(missing_ok=True)
        if reported:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)

    atexit.register(exit_if_reported)


def stop_server(line: str) -> NoReturn:
    """In a worker: one line on stderr, the serving process told to stop (when armed), exit 2."""
    print(f"gan_service: cannot start: {line}", file=sys.stderr, flush=True)
    name = os.environ.get(ENV)
    if name:
        with contextlib.suppress(OSError):
            with open(name, "a") as f:
                f.write(line + "\n")
            os.kill(os.getppid(), signal.SIGTERM)
    os._exit(2)
