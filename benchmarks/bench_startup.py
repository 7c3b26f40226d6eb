"""What serving a bundle of many models costs at start-up: seconds until /readyz (every model opened and
warmed up, in the start-up check and again in the worker), resident memory of the server's processes,
and GET /models (time and size), for a models folder grown to N models.

A folder of N models is the source folder's models (its default first), then renamed copies of them
(same graph, card name <name>-copy<k>) until there are N: the cost of N models of the source's sizes.

  python benchmarks/bench_startup.py --models-dir service/models --sizes 1,6,15
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_core.card_files import read_card, write_card  # noqa: E402
from gan_core.default_model import write_default  # noqa: E402
from service.local_server import local_server  # noqa: E402
from service.model_set import scan_models  # noqa: E402
from service.settings import Settings  # noqa: E402

MB = 1_000_000


def grown(source: Path, n: int, out: Path) -> Path:
    """`out` holding n models: the source's (default first), then renamed copies of them."""
    default = scan_models(Settings(models_dir=source), report=False, run_check=False).default
    models = sorted(source.glob("*.onnx"), key=lambda p: (read_card(p).name != default, p.name))
    out.mkdir(parents=True)
    write_default(out, default)  # the copies' names must not take the default's place by sorting first
    for i, path in zip(range(n), itertools.cycle(models), strict=False):
        if i < len(models):
            shutil.copy(path, out / path.name)
            continue
        copy = out / f"{path.stem}-copy{i}.onnx"
        shutil.copy(path, copy)
        write_card(copy, read_card(path).model_copy(update={"name": f"{read_card(path).name}-copy{i}"}))
    return out


def measure(folder: Path, threads: int) -> dict:
    t0 = time.perf_counter()
    with local_server(folder, threads=threads, ready_timeout=600) as server:
        ready = time.perf_counter() - t0
        tree = [
            psutil.Process(server.process.pid),
            *psutil.Process(server.process.pid).children(recursive=True),
        ]
        rss = sum(p.memory_info().rss for p in tree if p.is_running())
        t1 = time.perf_counter()
        r = httpx.get(server.url + "/models", timeout=60)
        models_ms = (time.perf_counter() - t1) * 1000
        served = len(r.json()["models"])
        return {"served": served, "ready_s": ready, "rss_mb": rss / MB, "worker_mb": server.worker_rss() / MB,
                "models_ms": models_ms, "models_kb": len(r.content) / 1000, "default": r.json()["default"]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=REPO / "service" / "models")
    ap.add_argument("--sizes", default="", help="comma-separated model counts (default: the folder's own)")
    ap.add_argument("--threads", type=int, default=1, help="GAN_ORT_THREADS of the server")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] or [
        len(list(args.models_dir.glob("*.onnx")))
    ]
    print(
        f"{'models':>6} {'MB':>6} {'ready s':>8} {'RSS MB':>7} {'worker MB':>9} {'/models ms':>10} {'/models kB':>10}  default"
    )
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for n in sizes:
            folder = grown(args.models_dir, n, Path(tmp) / f"n{n}")
            size = sum(p.stat().st_size for p in folder.glob("*.onnx")) / MB
            m = measure(folder, args.threads)
            print(f"{m['served']:>6} {size:>6.1f} {m['ready_s']:>8.1f} {m['rss_mb']:>7.0f} {m['worker_mb']:>9.0f} "
                  f"{m['models_ms']:>10.1f} {m['models_kb']:>10.1f}  {m['default']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
