"""Small requests beside bulk ones, a slow-client flood and a hang-up flood against `bentoml serve`.

Starts `bentoml serve service.app:GeneratorService` on a free loopback port (or uses --url for
the mixed phase only), and runs, against the same server:

  mixed   --small clients asking for 1 PNG back to back beside --bulk clients asking for
          --bulk-count images (--bulk-format png or npz): one-image p50/p99 and errors, bulk
          p50/p99 and how many were answered / refused (503) / other, images/s.
  slow    --slow connections that send half their headers and stall (slowloris) against a
          small connection cap (--max-connections) and header timeout (--header-timeout):
          how they ended, the latency of probe requests made meanwhile.
  hangup  --hangups requests whose headers promise a 1,000-byte body, send 12 bytes and hang up:
          requests left in progress, probe latency.
  urls    --urls requests to random unknown paths: size of /metrics before and after.
  probes  --probes GET /readyz, /livez and unknown paths over --probe-clients keep-alive
          connections (a load balancer's health checks, sped up): requests/s, worker RSS.
  headers --header-floods connections each sending --header-mib MiB of one unfinished header
          (answered 431 at GAN_MAX_HEADER_BYTES), then one request with 200 header fields:
          how they ended, worker RSS during and after.
  sigterm seconds from SIGTERM (with bulk requests in flight) to the server's exit, and whether
          those requests were answered.

Open file descriptors and RSS of the worker are printed before and after each flood (RSS must
return near its start). Loopback only; every phase is bounded in count and time.

  python benchmarks/bench_overload.py                                   # 4 bulk png clients
  python benchmarks/bench_overload.py --bulk 16 --bulk-format npz --phases mixed
  python benchmarks/bench_overload.py --phases probes,headers                # the two floods alone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from service.local_server import LocalServer, bulk_requests_in_flight, local_server  # noqa: E402

SLOW_HEAD = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-"  # never finished
HANGUP = (
    b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    b'{"count": 1,'
)


SERVER: LocalServer | None = None  # the server this script started (None with --url)


def worker_state() -> str:
    workers = SERVER.workers() if SERVER else []
    fds = sum(p.num_fds() for p in workers)
    rss = sum(p.memory_info().rss for p in workers) / 2**20
    return f"worker fds {fds}, RSS {rss:.0f} MiB"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


async def mixed(url: str, args) -> None:
    import aiohttp

    small_lat: list[float] = []
    small_err: dict[int | str, int] = {}
    bulk_lat: list[float] = []
    bulk_status: dict[int | str, int] = {}
    images = 0
    stop = time.monotonic() + args.seconds
    counter = iter(range(10**9))

    async def client(session, body: dict, lat: list[float], statuses: dict, count: int):
        nonlocal images
        while time.monotonic() < stop:
            body["seed"] = next(counter)
            t = time.perf_counter()
            try:
                async with session.post("/generate", json=body) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError as e:
                status = type(e).__name__
            if status == 200:
                lat.append(time.perf_counter() - t)
                images += count
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200 and lat is bulk_lat:
                await asyncio.sleep(0.05)  # a refused bulk client backs off a little

    timeout = aiohttp.ClientTimeout(total=120)
    conns = aiohttp.TCPConnector(limit=args.small + args.bulk + 4)
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(url, connector=conns, timeout=timeout) as s:
        small = {"count": 1, "format": "png"}
        bulk = {"count": args.bulk_count, "format": args.bulk_format}
        await asyncio.gather(
            *(client(s, dict(small), small_lat, small_err, 1) for _ in range(args.small)),
            *(client(s, dict(bulk), bulk_lat, bulk_status, args.bulk_count) for _ in range(args.bulk)),
        )
    wall = time.perf_counter() - t0
    small_ok = small_err.pop(200, 0)
    print(
        f"mixed   {args.small} one-image clients beside {args.bulk} x {args.bulk_count} {args.bulk_format}, {wall:.0f} s"
    )
    print(f"        one-image: {small_ok / wall:7.1f} req/s  p50 {pct(small_lat, 50):6.1f} ms  p99 {pct(small_lat, 99):6.1f} ms"
          f"  errors {sum(small_err.values())} {small_err or ''}")  # fmt: skip
    print(f"        bulk:      {bulk_status.get(200, 0) / wall:7.2f} req/s  p50 {pct(bulk_lat, 50):6.1f} ms  p99 {pct(bulk_lat, 99):6.1f} ms"
          f"  answers {bulk_status}")  # fmt: skip
    print(f"        images/s {images / wall:.0f}")


def probe(url: str, n: int, gap: float) -> tuple[list[float], dict]:
    import httpx

    lat, statuses = [], {}
    for i in range(n):
        t = time.perf_counter()
        try:
            r = httpx.post(url + "/generate", json={"seed": i}, timeout=30)
            status = r.status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        lat.append(time.perf_counter() - t)
        statuses[status] = statuses.get(status, 0) + 1
        time.sleep(gap)
    return lat, statuses


def await_answers(socks: list[socket.socket], timeout: float) -> dict[str, int]:
    """How each connection ended within `timeout`: the status line it got, 'closed', or 'still open'."""
    endings: dict[str, int] = {}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            try:
                first = key.fileobj.recv(256).split(b"\r\n")[0].decode() or "closed"
            except OSError as e:
                first = type(e).__name__
            endings[first] = endings.get(first, 0) + 1
            sel.unregister(key.fileobj)
    left = len(sel.get_map())
    if left:
        endings["still open"] = left
    for s in socks:
        s.close()
    return endings


def slow_flood(url: str, port: int, args) -> None:
    print(f"slow    before: {worker_state()}")
    socks = []
    t0 = time.perf_counter()
    for _ in range(args.slow):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(SLOW_HEAD)
        socks.append(s)
    opened = time.perf_counter() - t0
    time.sleep(0.2)
    during = worker_state()
    lat, statuses = probe(url, 20, 0.02)
    endings = await_answers(socks, args.header_timeout + 10)
    waited = time.perf_counter() - t0
    time.sleep(1)
    print(f"        {args.slow} stalled connections opened in {opened:.1f} s (cap {args.max_connections}, header timeout "
          f"{args.header_timeout:g} s); {waited:.1f} s later: {endings}")  # fmt: skip
    print(f"        probes meanwhile: {statuses}, p50 {pct(lat, 50):.1f} ms, max {max(lat) * 1e3:.1f} ms")
    print(f"        during: {during}; after: {worker_state()}")


def hangup_flood(url: str, port: int, args) -> None:
    print(f"hangup  before: {worker_state()}")
    t0 = time.perf_counter()
    for _ in range(args.hangups):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(HANGUP)
    sent = time.perf_counter() - t0
    time.sleep(2)
    left = in_progress(url)
    lat, statuses = probe(url, 20, 0.02)
    print(f"        {args.hangups} hang-ups sent in {sent:.1f} s; 2 s later still in progress: {left:.0f}; "
          f"probes {statuses}, p50 {pct(lat, 50):.1f} ms")  # fmt: skip
    print(f"        after: {worker_state()}")


def unknown_urls(url: str, args) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as c:
        before = len(c.get("/metrics").content)
        state = worker_state()
        for i in range(args.urls):
            c.get(f"/x{i}/{os.urandom(6).hex()}")
        after = len(c.get("/metrics").content)
    print(f"urls    {args.urls} random unknown paths: /metrics {before / 1e3:.1f} KB -> {after / 1e3:.1f} KB; "
          f"{state} -> {worker_state()}")  # fmt: skip


def probe_flood(port: int, args) -> None:
    import http.client
    import threading

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(n):
            conn.request("GET", ("/readyz", "/livez", "/no-such-page")[i % 3])
            conn.getresponse().read()
        conn.close()

    before = worker_state()
    per_client = args.probes // args.probe_clients
    threads = [threading.Thread(target=client, args=(per_client,)) for _ in range(args.probe_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n = per_client * args.probe_clients
    print(f"probes  {n} GET /readyz, /livez, unknown paths over {args.probe_clients} connections: {n / wall:.0f} req/s; "
          f"{before} -> {worker_state()}")  # fmt: skip


def header_flood(port: int, args) -> None:
    import http.client

    before = worker_state()
    socks = []
    for _ in range(args.header_floods):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        socks.append(s)
    sent = dict.fromkeys(range(len(socks)), 0)
    chunk = b"a" * 65536
    for _ in range(int(args.header_mib * 16)):
        for k, s in enumerate(socks):
            if sent[k] >= 0:
                try:
                    s.sendall(chunk)
                    sent[k] += len(chunk)
                except OSError:
                    sent[k] = -sent[k] - 1  # refused: stop sending on it
    during = worker_state()
    endings = await_answers(socks, 10)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/readyz", headers={f"X-F{i}": "v" for i in range(200)})
    many = conn.getresponse().status
    took = [-v - 1 if v < 0 else v for v in sent.values()]
    print(f"headers {args.header_floods} connections x {args.header_mib:g} MiB of one header: accepted "
          f"{max(took) / 2**10:.0f} KiB at most before the server closed them; {endings}; 200 header fields -> {many}")  # fmt: skip
    print(f"        {before} -> during {during} -> after {worker_state()}")


def in_progress(url: str) -> float:
    import httpx

    total = 0.0  # ours, or BentoML's own gauge on a server without service.metrics
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith('gan_http_requests_in_progress{route="/generate"}') or (
            line.startswith("bentoml_service_request_in_progress{") and 'endpoint="/generate"' in line
        ):
            total += float(line.split()[-1])
    return total


def sigterm(url: str, args) -> None:
    if SERVER is None:
        print("sigterm skipped: no server started by this script")
        return
    arbiter = psutil.Process(SERVER.process.pid)
    threads, results = bulk_requests_in_flight(url, 4)  # this script's server: service.metrics' gauge
    t0 = time.perf_counter()
    arbiter.send_signal(signal.SIGTERM)
    with contextlib.suppress(psutil.TimeoutExpired):
        arbiter.wait(120)
    for t in threads:
        t.join(60)
    print(
        f"sigterm server exited {time.perf_counter() - t0:.1f} s after SIGTERM; in-flight bulk requests: {results}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="run the mixed phase against a running service")
    p.add_argument("--models-dir", type=Path, default=REPO / "service" / "models")
    p.add_argument("--threads", type=int, default=1, help="ORT intra-op threads of the server")
    p.add_argument("--phases", default="mixed,slow,hangup,urls,probes,headers,sigterm")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the mixed phase")
    p.add_argument("--small", type=int, default=8, help="one-image clients")
    p.add_argument("--bulk", type=int, default=4, help="bulk clients")
    p.add_argument("--bulk-count", type=int, default=1024)
    p.add_argument("--bulk-format", choices=["png", "npz"], default="png")
    p.add_argument("--slow", type=int, default=2000, help="stalled connections")
    p.add_argument("--hangups", type=int, default=5000)
    p.add_argument("--urls", type=int, default=2000, help="requests to random unknown paths")
    p.add_argument("--probes", type=int, default=60000, help="health-check and unknown-path requests")
    p.add_argument("--probe-clients", type=int, default=4, help="keep-alive connections of the probe flood")
    p.add_argument("--header-floods", type=int, default=8, help="connections sending one huge header")
    p.add_argument("--header-mib", type=float, default=32, help="MiB of header each tries to send")
    p.add_argument("--max-connections", type=int, default=256, help="GAN_MAX_CONNECTIONS of the server")
    p.add_argument("--header-timeout", type=float, default=2.0, help="GAN_HEADER_TIMEOUT_S of the server")
    args = p.parse_args()
    phases = args.phases.split(",")
    env = {"GAN_MAX_CONNECTIONS": str(args.max_connections), "GAN_HEADER_TIMEOUT_S": str(args.header_timeout)}
    with contextlib.ExitStack() as stack:
        global SERVER
        if not args.url:
            SERVER = stack.enter_context(local_server(args.models_dir, args.threads, env=env))
        url = args.url or SERVER.url
        port = int(url.rsplit(":", 1)[1])
        print(f"{url}: ORT threads {args.threads}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}")
        if "mixed" in phases:
            asyncio.run(mixed(url, args))
        if args.url:
            return 0
        if "slow" in phases:
            slow_flood(url, port, args)
        if "hangup" in phases:
            hangup_flood(url, port, args)
        if "urls" in phases:
            unknown_urls(url, args)
        if "probes" in phases:
            probe_flood(port, args)
        if "headers" in phases:
            header_flood(port, args)
        if "sigterm" in phases:
            sigterm(url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
