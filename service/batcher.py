"""Merge concurrent requests into shared ONNX Runtime calls, with a bounded queue.

Opportunistic batching: while one ORT call runs (in a worker thread; ORT releases the GIL), new
requests queue up; when it returns, everything queued (up to max_batch images) goes into the next
call. An idle service therefore adds no waiting time, and a busy one amortizes per-call overhead.
Exported generators are row-independent (image i does not depend on its batch neighbours; checked
by tests), so merging never changes bytes. Past max_queue queued images, requests are refused.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from gan_core.feeds import concat_feeds, feeds_len, slice_feeds


class Overloaded(RuntimeError):
    """The queue is full; the client should retry later (HTTP 503 + Retry-After)."""


@dataclass
class _Job:
    feeds: dict[str, np.ndarray]
    future: asyncio.Future

    def __len__(self) -> int:
        return feeds_len(self.feeds)


class Batcher:
    def __init__(
        self,
        run: Callable[[dict[str, np.ndarray]], np.ndarray],
        executor: Executor,
        max_batch: int,
        max_queue: int,
        inline_max: int = 0,
    ):
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.inline_max = inline_max
        self._jobs: deque[_Job] = deque()
        self.queued = 0  # images waiting, not yet in an ORT call
        self._busy = False
        self.calls = 0  # ORT calls made (for tests and metrics)
        self.largest_batch = 0

    async def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 images for feeds {input: [N, ...]}; large N is cut into max_batch calls."""
        n = feeds_len(feeds)
        if self.queued + n > self.max_queue:
            raise Overloaded(
                f"server busy: {self.queued} images queued, limit {self.max_queue} (GAN_MAX_QUEUE); retry later"
            )
        if n <= self.inline_max and not self._busy:
            # Idle and tiny: a thread hop costs more than the call itself, so run it right here.
            self.calls += 1
            return self._run(feeds)
        loop = asyncio.get_running_loop()
        futures = []
        for a in range(0, n, self.max_batch):
            job = _Job(slice_feeds(feeds, a, a + self.max_batch), loop.create_future())
            self._jobs.append(job)
            futures.append(job.future)
        self.queued += n
        if not self._busy:
            self._busy = True
            loop.create_task(self._drain())
        parts = await asyncio.gather(*futures)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _take(self) -> list[_Job]:
        """Jobs for one call: queue order, up to max_batch images (a lone bigger job goes alone)."""
        jobs, size = [], 0
        while self._jobs and (not jobs or size + len(self._jobs[0]) <= self.max_batch):
            job = self._jobs.popleft()
            jobs.append(job)
            size += len(job)
        self.queued -= size
        return jobs

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._jobs:
                jobs = self._take()
                feeds = concat_feeds([j.feeds for j in jobs])
                try:
                    images = await loop.run_in_executor(self._executor, self._run, feeds)
                except Exception as e:  # one failed call fails its own requests, not the batcher
                    for j in jobs:
                        if not j.future.done():
                            j.future.set_exception(e)
                    continue
                self.calls += 1
                self.largest_batch = max(self.largest_batch, len(images))
                a = 0
                for j in jobs:
                    if not j.future.done():  # a cancelled client leaves a done future behind
                        j.future.set_result(images[a : a + len(j)])
                    a += len(j)
        finally:
            self._busy = False
