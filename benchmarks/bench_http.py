"""HTTP throughput and latency of the generator service, beside in-process ORT for the same work.

Starts `bentoml serve service.app:GeneratorService` on a free loopback port (or uses --url),
then drives it with an async client at each concurrency for two workloads:
  png1    POST /generate {count: 1, format: png}    (interactive use)
  npz256  POST /generate {count: 256, format: npz}  (bulk use, e.g. the augmentation job)
and prints req/s, images/s, p50/p99 latency and errors, with the in-process figure (latents +
ORT + encoding in this process, same model file and thread count) and the ratio beside it.
Bounded: at most --requests per cell and --seconds per cell; loopback only.

  python benchmarks/bench_http.py --models-dir service/models
  python benchmarks/bench_http.py --url http://127.0.0.1:3000 --model mnist-cdcgan
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_core.feeds import build_feeds  # noqa: E402
from gan_core.imaging import png_bytes  # noqa: E402
from gan_core.runtime import open_generator  # noqa: E402
from service.core import Images, npz_bytes  # noqa: E402
from service.local_server import local_serve  # noqa: E402

WORKLOADS = {"png1": (1, "png"), "npz256": (256, "npz")}


async def drive(url: str, body: dict, concurrency: int, max_requests: int, max_seconds: float, client: str):
    """Closed loop: `concurrency` workers each send requests back to back until either bound hits."""
    lat: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + max_seconds

    async def one(post) -> None:
        nonlocal errors, sent
        while sent < max_requests and time.monotonic() < deadline:
            sent += 1
            body["seed"] = sent  # different seeds: no caching anywhere can help
            t = time.perf_counter()
            ok = await post(body)
            lat.append(time.perf_counter() - t)
            errors += not ok

    t0 = time.perf_counter()
    if client == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=concurrency)) as s:

            async def post(b):
                async with s.post("/generate", json=b) as r:
                    await r.read()
                    return r.status == 200

            await asyncio.gather(*(one(post) for _ in range(concurrency)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:

            async def post(b):
                r = await c.post("/generate", json=b)
                return r.status_code == 200

            await asyncio.gather(*(one(post) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return len(lat) / wall, np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3, errors, len(lat)


def in_process(model_path: Path, threads: int, count: int, fmt: str, seconds: float) -> float:
    """Images/s for the same work in this process: feeds + one ORT call + the same encoding."""
    sess = open_generator(model_path, threads=threads)
    card = sess.card
    n = done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        idx = range(count)
        feeds = build_feeds(card, n, idx)
        labels = feeds.get("labels")
        images = sess.run(feeds)
        if fmt == "png":
            [png_bytes(im) for im in images]
        else:
            npz_bytes(Images(None, images, labels, np.arange(count), n))
        n += 1
        done += count
    return done / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="benchmark a running service instead of starting one")
    p.add_argument("--models-dir", type=Path, default=REPO / "service" / "models")
    p.add_argument(
        "--model", help="model name (default: the service's default); its .onnx must be in --models-dir"
    )
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--workloads", default="png1,npz256")
    p.add_argument("--requests", type=int, default=2000, help="at most this many requests per cell")
    p.add_argument("--seconds", type=float, default=15.0, help="at most this long per cell")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="ORT intra-op threads (server and in-process)",
    )
    p.add_argument("--workers", type=int, default=1, help="bentoml workers when starting the server")
    p.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    args = p.parse_args()

    onnx = sorted(args.models_dir.glob("*.onnx"))
    if not onnx:
        raise SystemExit(f"{args.models_dir}: no .onnx file (needed for the in-process figures)")
    cards = {open_generator(f, threads=1).card.name: f for f in onnx}
    model = args.model or next(iter(cards))
    if model not in cards:
        raise SystemExit(f"--model {model!r} not in {args.models_dir} ({', '.join(cards)})")

    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(local_serve(args.models_dir, args.threads, args.workers))
        print(f"model {model} ({cards[model].name}), ORT threads {args.threads}, server workers {args.workers}, "
              f"client {args.client}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'workload':9} {'conc':>4} {'req/s':>8} {'img/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'n':>5}"
              f" {'in-proc img/s':>13} {'http/in-proc':>12}")  # fmt: skip
        for name in args.workloads.split(","):
            count, fmt = WORKLOADS[name]
            local = in_process(cards[model], args.threads, count, fmt, min(args.seconds, 5.0))
            for conc in (int(c) for c in args.concurrency.split(",")):
                body = {"model": model, "count": count, "format": fmt}
                limit = args.requests if count == 1 else max(conc * 2, args.requests // 50)
                rps, p50, p99, errors, n = asyncio.run(
                    drive(url, body, conc, limit, args.seconds, args.client)
                )
                print(f"{name:9} {conc:>4} {rps:>8.1f} {rps * count:>8.0f} {p50:>8.2f} {p99:>8.2f} {errors:>6} {n:>5}"
                      f" {local:>13.0f} {rps * count / local:>12.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
