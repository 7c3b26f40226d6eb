"""Images/s written by `gan augment` per format, on this machine, measured side by side in one run.

For each format three figures: the generator alone (ONNX Runtime calls, no writing), the writers
alone (a replay backend hands out images generated once, so only encoding + writing is timed) and
the whole job end to end with the local backend. With --serve the script starts `bentoml serve` of
the model's folder on loopback (ORT on --threads) and times the HTTP backend against it too; --url
points at a service that is already running instead.

    BENTOML_DO_NOT_TRACK=true ORT_DISABLE_TELEMETRY=1 nice -n 10 python benchmarks/bench_augment.py \\
        --model service/models/mnist-cdcgan.onnx --n 10000 [--serve | --url http://127.0.0.1:3000#mnist-cdcgan]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from augment.backends import LocalBackend
from augment.job import default_workers, execute, run_job
from augment.request import resolve_job
from gan_core.imaging import png_bytes
from gan_core.latents import latents

REPO = Path(__file__).resolve().parent.parent


class ReplayBackend:
    """Hands out `pool` images generated once (by index modulo), so only the writers are timed."""

    def __init__(self, local: LocalBackend, pool: int = 1000):
        self.card, self.model_sha256, self.description = local.card, local.model_sha256, "replay"
        labels = np.arange(pool) % self.card.num_classes
        self.images = local.generate(0, range(pool), labels if self.card.conditional else None, None)

    def generate(self, seed, indices, labels, truncation, codes=None):
        """The job's backend interface (seed, indices, labels, truncation, codes); all but indices ignored."""
        return self.images[np.arange(indices.start, indices.stop) % len(self.images)]

    def close(self) -> None:
        pass


def generator_only(local: LocalBackend, n: int) -> float:
    labels = np.arange(n) % local.card.num_classes
    local.generate(
        0, range(local.batch_size), labels[: local.batch_size] if local.card.conditional else None, None
    )  # warm-up
    t = time.perf_counter()
    local.generate(0, range(n), labels if local.card.conditional else None, None)
    return n / (time.perf_counter() - t)


def images_per_s(n: int, fn, *args, **kwargs) -> float:
    """n / the seconds fn(*args, **kwargs) took."""
    t = time.perf_counter()
    fn(*args, **kwargs)
    return n / (time.perf_counter() - t)


def file_creation_ceiling(root: Path, n: int, size: int, workers: int) -> float:
    """Files/s for creating n files of `size` bytes (temp + rename, as the folder writer does) in
    `root`, with no encoding at all: what this file system allows the folder format at best."""
    from concurrent.futures import ThreadPoolExecutor

    from gan_core.fileio import write_file_fast

    data = b"\0" * size
    folders = [root / str(k) for k in range(10)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    paths = [f"{folders[i % 10]}/{i:08d}.png" for i in range(n)]

    def write(group: list[str]) -> None:
        for p in group:
            write_file_fast(p, data)

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, [paths[a : a + 64] for a in range(0, n, 64)]))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "service" / "models" / "mnist-cdcgan.onnx"))
    ap.add_argument("--n", type=int, default=10_000, help="images per measurement")
    ap.add_argument("--formats", default="folder,npz,idx")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--chunk-size", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="ORT intra-op threads")
    ap.add_argument("--workers", type=int, help="encode/write threads (default: the job's)")
    ap.add_argument("--url", help="also time the HTTP backend against this running service (URL#model)")
    ap.add_argument(
        "--serve", action="store_true", help="start a local bentoml serve and time the HTTP backend"
    )
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--tmp", help="folder for the outputs (default: a temp folder, removed after)")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.serve:
            from service.local_server import local_serve

            base = stack.enter_context(local_serve(Path(args.model).parent, threads=args.threads))
            args.url = f"{base}#{Path(args.model).stem}"
        run(args)


def run(args: argparse.Namespace) -> None:

    local = LocalBackend(args.model, batch_size=args.batch_size, threads=args.threads)
    replay = ReplayBackend(local)
    card = local.card
    print(
        f"{platform.node()}: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), model {card.name} ({args.model}), {local.description}"
    )
    print(
        f"n = {args.n} images per figure, batch {args.batch_size}, chunk {args.chunk_size}, workers {args.workers or 'default'}\n"
    )
    gen = generator_only(local, args.n)
    root = Path(args.tmp or tempfile.mkdtemp(prefix="bench-augment-"))
    rows = []
    job = dict(total=args.n, chunk_size=args.chunk_size)
    workers = args.workers or default_workers()
    png_size = int(np.median([len(png_bytes(im)) for im in replay.images]))
    ceilings = []
    for fmt in args.formats.split(","):
        cfg = resolve_job(card, local.model_sha256, format=fmt, **job)
        if fmt == "folder":
            ceilings.append(file_creation_ceiling(root / "bare-before", args.n, png_size, workers))
        writers_only = images_per_s(
            args.n, execute, cfg, root / f"replay-{fmt}", replay, workers=args.workers
        )
        common = dict(format=fmt, batch_size=args.batch_size, workers=args.workers, **job)
        end_to_end = images_per_s(
            args.n, run_job, args.model, root / f"local-{fmt}", threads=args.threads, **common
        )
        http = None
        if args.url:
            http = images_per_s(
                args.n, run_job, args.url, root / f"http-{fmt}", concurrency=args.concurrency, **common
            )
        if fmt == "folder":
            ceilings.append(file_creation_ceiling(root / "bare-after", args.n, png_size, workers))
        rows.append((fmt, gen, writers_only, end_to_end, http))
    print(
        f"{'format':<8}{'generator only':>16}{'writers only':>14}{'local job':>11}{'HTTP job':>10}   (images/s)"
    )
    for fmt, g, w, e, h in rows:
        print(f"{fmt:<8}{g:>16,.0f}{w:>14,.0f}{e:>11,.0f}{(f'{h:,.0f}' if h else '-'):>10}")
    if ceilings:
        print(
            f"\nfile system alone, just before / after the folder runs: {ceilings[0]:,.0f} / {ceilings[1]:,.0f} files/s "
            f"({args.n} new {png_size}-byte files, {workers} threads, no encoding, in {root}).\n"
            "That bounds the folder format on this disk; it swings several-fold between runs on some VMs."
        )
    z = latents(0, range(2000), card.latent_dim)
    t = time.perf_counter()
    latents(0, range(2000), card.latent_dim)
    print(
        f"\nlatents alone: {2000 / (time.perf_counter() - t):,.0f} vectors/s ({z.shape[1]} dims); end-to-end includes them and the chunk markers"
    )
    if not args.tmp:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
