"""The batcher with a stand-in generator: fair shares, the image bound, deadlines and dropped work."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.batcher import Batcher, DeadlineExceeded, Overloaded


class SlowGenerator:
    """Image i of a call is its z value (row-independent, like the exported generators); each call
    sleeps `per_image` seconds per image and records which z values it computed."""

    def __init__(self, per_image: float = 0.0005):
        self.per_image, self.calls, self.lock = per_image, [], threading.Lock()

    def __call__(self, feeds):
        z = feeds["z"]
        with self.lock:
            self.calls.append(z[:, 0].tolist())
        time.sleep(self.per_image * len(z))
        return z.copy()


def feeds(start: int, n: int) -> dict[str, np.ndarray]:
    return {"z": np.arange(start, start + n, dtype=np.float32)[:, None].repeat(2, 1)}


@pytest.fixture
def pool():
    with ThreadPoolExecutor(1) as ex:
        yield ex


def test_a_small_request_waits_one_call_behind_bulk_ones_and_bytes_stay_in_order(pool):
    gen = SlowGenerator()

    async def scenario():
        b = Batcher(gen, pool, max_batch=64, max_queue=8192, quantum=8)
        bulk = [asyncio.create_task(b(feeds(10_000 * (k + 1), 1024))) for k in range(3)]
        await asyncio.sleep(0.01)  # the bulk requests are queued and the first call runs
        calls_before = len(gen.calls)
        small = await b(feeds(7, 1))
        calls_to_small = len(gen.calls) - calls_before
        return small, calls_to_small, await asyncio.gather(*bulk), b

    small, calls_to_small, bulk, b = asyncio.run(scenario())
    assert calls_to_small <= 2  # FIFO would have put it behind 3 x 1,024 images = 48 calls
    assert small.tolist() == [[7, 7]]
    for k, out in enumerate(bulk):  # sliced into many shared calls, reassembled in order
        assert np.array_equal(out, feeds(10_000 * (k + 1), 1024)["z"])
    assert b.largest_batch == 64 and b.queued == 0
    with_small = [c for c in gen.calls if 7 in c]
    assert len(with_small) == 1 and len(with_small[0]) == 16  # first in a short call (small_call = 2 x 8)
    for call in [c for c in gen.calls if 7 not in c][:3]:  # round-robin, 8 images per request per turn
        shares = sorted(sum(1 for v in call if 10_000 * (k + 1) <= v < 10_000 * (k + 2)) for k in range(3))
        assert min(shares) >= 16 and sum(shares) == 64, call


def test_the_queue_is_bounded_in_images_and_bulk_requests_leave_room_for_small_ones(pool):
    async def scenario():
        b = Batcher(SlowGenerator(0.002), pool, max_batch=16, max_queue=100)
        first = [asyncio.create_task(b(feeds(0, 50))) for _ in range(2)]  # 100 images: the queue is full
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as bulk:
            b.admit(20)  # another bulk request does not fit
        b.admit(16)  # a small one still does (the reserve: 25 on top)
        with pytest.raises(Overloaded) as full:
            b.admit(101)
        await asyncio.gather(*first)
        b.admit(100)  # drained: room again
        return str(bulk.value), str(full.value), bulk.value.retry_after

    bulk, full, retry = asyncio.run(scenario())
    assert bulk == "server busy: 100 images queued, limit 100 (GAN_MAX_QUEUE); retry later"
    assert full == "server busy: 100 images queued, limit 100 (GAN_MAX_QUEUE); retry later" and retry >= 1


def test_small_requests_past_the_reserve_are_refused_too(pool):
    async def scenario():
        b = Batcher(SlowGenerator(0.002), pool, max_batch=16, max_queue=100)
        running = [asyncio.create_task(b(feeds(0, 50))) for _ in range(2)]
        running += [asyncio.create_task(b(feeds(0, 8))) for _ in range(3)]  # 124 of 125
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as e:
            b.admit(2)
        await asyncio.gather(*running)
        return str(e.value)

    assert asyncio.run(scenario()) == (
        "server busy: 124 images queued, limit 100 (GAN_MAX_QUEUE) + 25 for requests of <= 16 images "
        "(GAN_MAX_BATCH); retry later"
    )


def test_a_request_past_its_deadline_gets_504_and_its_work_is_dropped(pool):
    gen = SlowGenerator(0.001)

    async def scenario():
        b = Batcher(gen, pool, max_batch=8, max_queue=10_000, timeout_s=0.2)
        with pytest.raises(DeadlineExceeded) as e:
            await b(feeds(0, 1000))  # ~1 s of work
        await asyncio.sleep(0.1)  # the call in flight finishes, nothing more is started
        return str(e.value), b

    message, b = asyncio.run(scenario())
    assert message == "server busy: not done within 0.2 s (GAN_REQUEST_TIMEOUT_S); work dropped"
    done = sum(len(c) for c in gen.calls)
    assert done < 400 and b.dropped == 1000 - done and b.queued == 0


def test_a_cancelled_caller_drops_its_remaining_images(pool):
    gen = SlowGenerator(0.001)

    async def scenario():
        b = Batcher(gen, pool, max_batch=8, max_queue=10_000)
        task = asyncio.create_task(b(feeds(0, 500)))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        return b

    b = asyncio.run(scenario())
    assert b.queued == 0 and b.dropped > 300 and sum(len(c) for c in gen.calls) + b.dropped == 500
