"""Prometheus metrics with a fixed set of series, so /metrics stays small whatever clients send.

BentoML's own HTTP metrics label every request with its raw path: each random URL a client tries
adds series for good (2,000 unknown URLs grew /metrics from 67 KB to 8.4 MB and a worker by
169 MiB, and scrapes then slowed every request). service.app turns them off; this middleware
counts instead, with labels from closed sets only: the route (one of the service's, else
"other"), the status class ("2xx" .. "5xx", "none" when no answer was started) and the model
(one of the served names; "unknown" for a name that is not served, "" for routes without one).
It also answers GET /metrics, merging all workers' values when BentoML runs prometheus_client
in multiprocess mode (PROMETHEUS_MULTIPROC_DIR), as its own endpoint did.

The workers' files go to a folder of this server's own (`own_metrics_dir`), not BentoML's
`$BENTOML_HOME/prometheus_multiproc_dir`, which every `bentoml serve` under the same home shares
and wipes at start, so servers on one machine would mix and erase each other's counts.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from service.guard import STATE_MODEL

ROUTES = ("/", "/docs.json", "/livez", "/readyz", "/healthz", "/metrics")
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


METRICS_DIR_ENV = "GAN_METRICS_DIR"  # set by the serving process for its workers; not a user setting
_PREFIX = "gan-metrics-"


def own_metrics_dir() -> str:
    """In the serving process: a new folder for its workers' metric files, passed to them by
    environment and removed at exit; folders left by servers that were killed are removed first."""
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob(f"{_PREFIX}*-*"):
        pid = old.name.removeprefix(_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    os.environ[METRICS_DIR_ENV] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def use_own_metrics_dir() -> None:
    """In a worker, before any metric exists: write into the serving process's folder."""
    path = os.environ.get(METRICS_DIR_ENV)
    if path and os.path.isdir(path):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def series() -> SimpleNamespace:
    """The metric objects, made on first use: prometheus_client must be imported only once the
    worker's environment (PROMETHEUS_MULTIPROC_DIR) is in place."""
    import prometheus_client as pc

    labels = ["route", "status", "model"]
    return SimpleNamespace(
        client=pc,
        requests=pc.Counter("gan_http_requests", "HTTP requests answered", labels),
        duration=pc.Histogram(
            "gan_http_request_duration_seconds", "HTTP request duration", labels, buckets=DURATION_BUCKETS
        ),
        in_progress=pc.Gauge(
            "gan_http_requests_in_progress",
            "HTTP requests being answered",
            ["route"],
            multiprocess_mode="livesum",
        ),
        images_dropped=pc.Counter(
            "gan_images_dropped",
            "queued images never computed: their client hung up or their deadline passed",
            ["model"],
        ),
        connections_refused=pc.Counter(
            "gan_http_connections_refused",
            "connections closed before a request: evicted or refused at GAN_MAX_CONNECTIONS, headers late",
            ["reason"],
        ),
    )


def exposition() -> bytes:
    """The text of /metrics: every worker's values in multiprocess mode, else this process's."""
    pc = series().client
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return pc.generate_latest(pc.REGISTRY)
    from prometheus_client import multiprocess

    registry = pc.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return pc.generate_latest(registry)


def images_dropped(model: str, n: int) -> None:
    """Count n queued images of a served model that were dropped (service.batcher)."""
    series().images_dropped.labels(model).inc(n)


def connection_refused(reason: str) -> None:
    """Count a connection closed by service.connections ('evicted', 'limit' or 'header_timeout')."""
    series().connections_refused.labels(reason).inc()


class RequestMetrics:
    """options: routes (the API routes), models (served names), default (the default model)."""

    def __init__(self, app, routes, models, default: str):
        self.app = app
        self.api_routes = set(routes)
        self.routes = self.api_routes | set(ROUTES)
        self.models, self.default = set(models), default

    def _model(self, route: str, state: dict) -> str:
        if route not in self.api_routes or route == "/models":
            return ""
        name = state.get(STATE_MODEL) or self.default
        return name if name in self.models else "unknown"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in self.routes else "other"
        state = scope.setdefault("state", {})
        status = 0

        async def watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m = series()
        t0 = time.perf_counter()
        gauge = m.in_progress.labels(route)
        gauge.inc()
        try:
            if route == "/metrics" and scope["method"] == "GET":
                await self._serve(watch)
            else:
                await self.app(scope, receive, watch)
        finally:
            gauge.dec()
            labels = (route, f"{status // 100}xx" if status else "none", self._model(route, state))
            m.requests.labels(*labels).inc()
            m.duration.labels(*labels).observe(time.perf_counter() - t0)

    @staticmethod
    async def _serve(send) -> None:
        body = exposition()
        ctype = series().client.CONTENT_TYPE_LATEST.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
