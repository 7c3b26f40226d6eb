"""The numpy work of bulk requests (their feeds and encoded answers) in a process of its own.

Seeded feeds for 1,024 images take ~30 ms of Python (one generator per image, so image i never
depends on the batch) and their JSON of PNGs ~50 ms. In a thread of the worker that work holds
the GIL against the event loop, and one-image requests beside bulk ones waited for it: p99 150-156 ms
(threads) vs 59-63 ms (this process), side by side on 2 cores (README, Serving). ORT calls stay in the worker's
threads (ORT releases the GIL). The process is spawned, not forked (the worker runs ORT threads),
and started with the service, so no request pays its start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from gan_core.card import ModelCard
from service.inputs import feeds_for

if TYPE_CHECKING:
    from service.encoding import Images
    from service.model_set import Model


@dataclasses.dataclass(frozen=True)
class ModelView:
    """What feeds and answers need of a served model: its name and card (picklable, no session)."""

    name: str
    card: ModelCard


def _start_process(worker_pid: int) -> None:
    """Run first in the new process. SIGTERM and SIGINT are the server's to handle: `bentoml serve`
    and a terminal's Ctrl-C signal the whole process group, and a pool process that died of them
    failed the bulk requests the worker was still draining (500s). So it ends with the pool (the
    worker's shutdown) or, the worker gone without one (it exits, or is killed), within a second:
    its queue never reads EOF, since a spawned process holds both ends of it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == worker_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="gan-bulk-orphan-watch", daemon=True).start()


def _import_modules() -> None:
    """This module (and service.inputs with it) is imported to unpickle the call."""
    import service.encoding  # noqa: F401


class BulkWork:
    """Runs feeds_for and answer encoding in `processes` spawned processes (0: the default thread pool)."""

    def __init__(self, processes: int):
        self.executor: Executor | None = None
        if processes:
            ctx = multiprocessing.get_context("spawn")
            self.executor = ProcessPoolExecutor(
                processes, mp_context=ctx, initializer=_start_process, initargs=(os.getpid(),)
            )
            # started, and its modules imported (~0.4 s), now rather than by the first bulk request
            self.executor.submit(_import_modules).result()

    async def feeds(self, model: Model, *args: Any):
        view = ModelView(model.name, model.card) if self.executor else model
        return await asyncio.get_running_loop().run_in_executor(self.executor, feeds_for, view, *args)

    async def encode(self, make, result: Images) -> bytes:
        if self.executor:
            result = dataclasses.replace(result, model=ModelView(result.model.name, result.model.card))
        return await asyncio.get_running_loop().run_in_executor(self.executor, make, result)

    def close(self) -> None:
        """End the process and join it, so its queues are closed and their semaphores released."""
        if self.executor:
            self.executor.shutdown(wait=True, cancel_futures=True)
