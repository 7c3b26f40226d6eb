"""Merge concurrent requests into shared ONNX Runtime calls, fairly, with a bounded queue.

Opportunistic batching: while one ORT call runs (in a worker thread; ORT releases the GIL), new
requests queue up; when it returns, the next call is filled from everything queued (up to
max_batch images). An idle service therefore adds no waiting time, and a busy one amortizes
per-call overhead.

Fair share instead of first come, first served: each call is filled round-robin, `quantum`
images per request per turn, so a one-image request waits for at most one call behind any number
of bulk requests instead of behind all of their images (head-of-line blocking). Small requests
(at most `quantum` images left) go first, whole, in a call cut to `small_call` images, so their
own call is short too (per-image cost is flat from ~4 images up: 16 images run at ~90% of 64's rate). Exported
generators are row-independent (image i does not depend on its batch neighbours; checked by
tests), so slicing and merging never change bytes.

Admission is bounded in images: past max_queue queued images a request is refused (503 with a
Retry-After estimated from the measured speed); requests of at most max_batch images may use a
further quarter, so small ones still get in while bulk clients keep the queue full.
Each request has a deadline: past it the caller gets DeadlineExceeded (504) and its images not
yet computed are dropped from the queue, as they are when the caller goes away.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from gan_core.feeds import concat_feeds, feeds_len, slice_feeds


class Overloaded(RuntimeError):
    """The queue is full; the client should retry after `retry_after` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(RuntimeError):
    """The request was not done within its deadline; its remaining work was dropped (HTTP 504)."""


@dataclass(eq=False)
class _Request:
    feeds: dict[str, np.ndarray]
    n: int
    future: asyncio.Future
    taken: int = 0  # images handed to ORT calls so far
    parts: list[np.ndarray] = field(default_factory=list)
    delivered: int = 0


def _sizes(req: _Request) -> tuple:
    """The per-image shapes of a request's feeds: requests merge into one call only when they match."""
    return tuple((k, v.shape[1:]) for k, v in req.feeds.items())


class Batcher:
    def __init__(
        self,
        run: Callable[[dict[str, np.ndarray]], np.ndarray],
        executor: Executor,
        max_batch: int,
        max_queue: int,
        inline_max: int = 0,
        timeout_s: float = 30.0,
        quantum: int | None = None,
        small_call: int | None = None,
        on_drop: Callable[[int], None] | None = None,
    ):
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.inline_max = inline_max
        self.timeout_s = timeout_s
        self.quantum = quantum or max(1, max_batch // 8)
        # a call that holds a small request (<= quantum images left) is cut to this many images
        self.small_call = max(self.quantum, small_call or 2 * self.quantum)
        self.reserve = max_queue // 4  # on top of max_queue, for requests of <= max_batch images
        self._pending: deque[_Request] = deque()
        self.queued = 0  # images waiting, not yet in an ORT call
        self._busy = False
        self.calls = 0  # ORT calls made (for tests and metrics)
        self.largest_batch = 0
        self.dropped = 0  # images never computed because their request was cancelled or timed out
        self.on_drop = on_drop  # told each such count (service.metrics)
        self.images_per_s: float | None = None  # moving average of the measured speed

    def retry_after(self, n: int = 0) -> int:
        """Seconds until the queue (plus n more images) has likely drained: 1 .. 60."""
        if not self.images_per_s:
            return 1
        return max(1, min(60, math.ceil((self.queued + n) / self.images_per_s)))

    def admit(self, n: int) -> None:
        """Raise Overloaded unless n more images fit in the queue (checked again on entry).

        Requests of at most max_batch images may also use a reserve of max_queue / 4 on top, so
        bulk clients that fill the queue cannot lock small ones out."""
        reserve = self.reserve if n <= self.max_batch else 0
        if n <= self.max_queue and self.queued + n <= self.max_queue + reserve:
            return
        limit = f"limit {self.max_queue} (GAN_MAX_QUEUE)"
        if reserve and n <= self.max_queue:
            limit += f" + {reserve} for requests of <= {self.max_batch} images (GAN_MAX_BATCH)"
        raise Overloaded(
            f"server busy: {self.queued} images queued, {limit}; retry later", self.retry_after(n)
        )

    async def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 images for feeds {input: [N, ...]}, computed in shared calls of <= max_batch images."""
        n = feeds_len(feeds)
        self.admit(n)
        if n <= self.inline_max and not self._busy:
            # Idle and tiny: a thread hop costs more than the call itself, so run it right here.
            self.calls += 1
            return self._run(feeds)
        loop = asyncio.get_running_loop()
        req = _Request(feeds, n, loop.create_future())
        self._pending.append(req)
        self.queued += n
        if not self._busy:
            self._busy = True
            loop.create_task(self._drain())
        try:
            return await asyncio.wait_for(req.future, self.timeout_s)
        except asyncio.TimeoutError:  # wait_for cancelled the future: the drain drops what is left
            raise DeadlineExceeded(
                f"server busy: not done within {self.timeout_s:g} s (GAN_REQUEST_TIMEOUT_S); work dropped"
            ) from None

    def _take(self) -> list[tuple[_Request, int, int]]:
        """One call's slices (request, start, end): round-robin, `quantum` images per turn."""
        for req in [r for r in self._pending if r.future.done()]:  # cancelled, timed out or failed
            self._pending.remove(req)
            self.queued -= req.n - req.taken
            self.dropped += req.n - req.taken
            if self.on_drop is not None and req.n > req.taken:
                self.on_drop(req.n - req.taken)
        spans: dict[_Request, list[int]] = {}
        room = self.max_batch
        small: list[_Request] = []
        rest: list[_Request] = []
        for r in self._pending:
            (small if r.n - r.taken <= self.quantum else rest).append(r)
        if small:  # small requests first, whole, in a short call: they wait for no bulk images
            room = min(self.max_batch, max(self.small_call, sum(r.n - r.taken for r in small)))
            self._pending = deque(small + rest)
        # one call stacks one image size: requests of other sizes (a dynamic-size model) wait their turn
        first = _sizes(self._pending[0]) if self._pending else None
        later = deque(r for r in self._pending if _sizes(r) != first)
        self._pending = deque(r for r in self._pending if _sizes(r) == first)
        while room and self._pending:
            req = self._pending.popleft()
            k = min(self.quantum, req.n - req.taken, room)
            span = spans.setdefault(req, [req.taken, req.taken])
            span[1] += k
            req.taken += k
            room -= k
            self.queued -= k
            if req.taken < req.n:
                self._pending.append(req)  # to the back of the line
        self._pending.extend(later)
        return [(req, a, b) for req, (a, b) in spans.items()]

    def _deliver(self, slices: list[tuple[_Request, int, int]], images: np.ndarray) -> None:
        off = 0
        for req, a, b in slices:
            if not req.future.done():
                req.parts.append(images[off : off + b - a])
                req.delivered += b - a
                if req.delivered == req.n:
                    parts = req.parts
                    req.future.set_result(parts[0] if len(parts) == 1 else np.concatenate(parts))
            off += b - a

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while slices := self._take():
                feeds = concat_feeds([slice_feeds(r.feeds, a, b) for r, a, b in slices])
                t0 = time.perf_counter()
                try:
                    images = await loop.run_in_executor(self._executor, self._run, feeds)
                except Exception as e:  # one failed call fails its own requests, not the batcher
                    for req, _, _ in slices:
                        if not req.future.done():
                            req.future.set_exception(e)
                    continue
                rate = len(images) / max(time.perf_counter() - t0, 1e-6)
                self.images_per_s = (
                    rate if self.images_per_s is None else 0.8 * self.images_per_s + 0.2 * rate
                )
                self.calls += 1
                self.largest_batch = max(self.largest_batch, len(images))
                self._deliver(slices, images)
        finally:
            self._busy = False
