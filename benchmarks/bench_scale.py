"""Scale-out figures: the augmentation job on Ray against the local engine, and DDP across nodes.

1. Images/s of the local engine and of `--engine ray` (a local Ray of --cpus CPUs, one actor per CPU)
   for the same job, the Ray run's start-up (connect + actors up + first chunk) and its steady rate
   (images after the first chunk / time after it), and whether both wrote the same bytes.
2. The writers' ceilings on this file system: files/s of small PNGs (folder format) and MB/s of
   chunk arrays (npz / idx), plus the driver-side finalize of an npz (one node builds the file).
3. A scaling estimate: nodes like this one for 10 M, 100 M and 1 B images an hour, and which of the
   above stops it first.
4. With --train-steps: steps/s of `torchrun` as 2 nodes x 1 process and as 1 node x 2 processes.

    python benchmarks/bench_scale.py --model service/models/mnist-cdcgan.onnx --n 20000 --cpus 2 \
        --train-steps 200 --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = (10_000_000, 100_000_000, 1_000_000_000)


def visible(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".augment" not in p.relative_to(out).parts
    }


def bench_engines(args, tmp: Path) -> dict:
    from augment.backends import LocalBackend
    from augment.job import close_job, plan_run, run_job
    from augment.ray_engine import run_chunks
    from augment.request import resolve_job
    from augment.writers import make_writer

    job = dict(total=args.n, format=args.format, chunk_size=args.chunk_size, seed=1)
    t0 = time.perf_counter()
    local = run_job(args.model, tmp / "local", threads=args.cpus, **job)
    local_s = time.perf_counter() - t0
    backend = LocalBackend(args.model, threads=1)
    cfg = resolve_job(backend.card, backend.model_sha256, **{k: v for k, v in job.items() if k != "format"},
                      format=args.format)  # fmt: skip
    out = (tmp / "ray").resolve()
    todo, planned, _ = plan_run(cfg, out, 0, 1)
    stamps: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    where = run_chunks(
        cfg, out, Path(args.model), todo, address=args.address, batch_size=256, threads=1, actors=None,
        on_chunk=lambda n: stamps.append((time.perf_counter(), n)),
    )  # fmt: skip
    t_chunks = time.perf_counter()
    t1 = time.perf_counter()
    close_job(cfg, out, make_writer(cfg, out), (0, 1, planned, args.n, 0.0), where)
    finalize_s = time.perf_counter() - t1
    ray_s = time.perf_counter() - t0
    startup = stamps[0][0] - t0
    after = sum(n for _, n in stamps[1:])
    steady = after / (stamps[-1][0] - stamps[0][0]) if len(stamps) > 1 and after else float("nan")
    same = visible(tmp / "local") == visible(out)
    return {"local_ips": args.n / local_s, "local_s": local_s, "local_backend": local.backend,
            "ray_ips": args.n / ray_s, "ray_s": ray_s, "ray_startup_s": startup, "ray_steady_ips": steady,
            "ray_chunks_s": t_chunks - t0, "ray_where": where, "finalize_s": finalize_s, "same_bytes": same}  # fmt: skip


def bench_writers(args, tmp: Path) -> dict:
    """Single-thread ceilings of the two kinds of writes on this file system."""
    import numpy as np

    from gan_core.fileio import write_file_fast
    from gan_core.imaging import png_bytes

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (args.writer_n, 28, 28, 1), np.uint8)
    pngs = [png_bytes(im, compress_level=1) for im in imgs]
    d = tmp / "files"
    d.mkdir()
    t0 = time.perf_counter()
    for i, b in enumerate(pngs):
        write_file_fast(d / f"{i:08d}.png", b)
    files_s = args.writer_n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for im in imgs:
        png_bytes(im, compress_level=1)
    encode_s = args.writer_n / (time.perf_counter() - t0)
    big = rng.integers(0, 256, (args.writer_n * 8, 28, 28), np.uint8)
    t0 = time.perf_counter()
    with open(tmp / "chunk.npy", "wb") as f:
        np.lib.format.write_array(f, big)
        f.flush()
        os.fsync(f.fileno())
    mb_s = big.nbytes / 1e6 / (time.perf_counter() - t0)
    return {"png_files_per_s": files_s, "png_encode_per_s": encode_s, "array_mb_per_s": mb_s}


def scaling(per_node: float, writers: dict, finalize_ips: float) -> list[str]:
    lines = []
    file_cap = writers["png_files_per_s"]
    array_cap = writers["array_mb_per_s"] * 1e6 / 784  # 28x28 grayscale images per second
    for target in TARGETS:
        rate = target / 3600
        nodes = math.ceil(rate / per_node)
        notes = []
        if rate > file_cap:
            notes.append(f"folder: {rate / file_cap:.0f}x one writer thread's file creates here")
        if rate > array_cap:
            notes.append(f"npz: {rate / array_cap:.1f}x this disk's array MB/s")
        if rate > finalize_ips:
            notes.append(f"npz finalize on one node: {target / finalize_ips / 3600:.1f} h alone")
        lines.append(
            f"{target:>13,} images/h = {rate:>9,.0f}/s: {nodes:>5,} nodes"
            + ("; " + "; ".join(notes) if notes else "")
        )
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_steps_per_s(args, tmp: Path, nodes: int) -> float:
    """steps/s inside the training loop (its log's elapsed_s at the last step), world size 2 either way."""
    out = tmp / f"train-{nodes}x{2 // nodes}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO)}
    tail = ["-m", "gan.cli", "train", "--preset", args.preset, "--data", args.data, "--out", str(out),
            "--steps", str(args.train_steps), "--threads", "1", "--no-progress"]  # fmt: skip
    run = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        cmds = [
            [
                *run,
                "--nnodes=1",
                "--nproc_per_node=2",
                "--rdzv_backend=c10d",
                "--rdzv_endpoint=127.0.0.1:0",
                *tail,
            ]
        ]
    else:
        port = free_port()
        cmds = [[*run, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={n}", "--master_addr=127.0.0.1",
                 f"--master_port={port}", *tail] for n in range(2)]  # fmt: skip
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in cmds
    ]
    for p in procs:
        _, err = p.communicate(timeout=3600)
        if p.returncode:
            raise SystemExit(f"torchrun failed: {err[-2000:]}")
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])  # logged at the last step
    return last["step"] / max(last["elapsed_s"], 0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "service/models/mnist-cdcgan.onnx"))
    ap.add_argument("--n", type=int, default=20000, help="images per engine run")
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--format", default="folder", choices=["folder", "npz", "idx"])
    ap.add_argument(
        "--cpus", type=int, default=2, help="the local engine's ORT threads = the local Ray's CPUs"
    )
    ap.add_argument("--address", help="a Ray cluster to use instead of a local Ray of --cpus CPUs")
    ap.add_argument("--writer-n", type=int, default=5000, help="files for the writer ceilings")
    ap.add_argument("--train-steps", type=int, default=0, help="0: skip the training figures")
    ap.add_argument("--preset", default="mnist-cdcgan")
    ap.add_argument("--data", help="training data (default: MNIST)")
    ap.add_argument("--tmp", help="scratch folder (default: a new temp folder, removed after)")
    args = ap.parse_args()
    if args.address is None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # one node: stay on loopback
    tmp = Path(args.tmp) if args.tmp else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}; {args.n:,} images, {args.format}, chunks of {args.chunk_size}")  # fmt: skip
        e = bench_engines(args, tmp)
        print(f"local engine  {e['local_ips']:>9,.0f} images/s  ({e['local_s']:.1f} s; {e['local_backend']})")
        print(
            f"ray engine    {e['ray_ips']:>9,.0f} images/s  ({e['ray_s']:.1f} s end to end; {e['ray_where']})"
        )
        print(f"ray / local   {e['ray_ips'] / e['local_ips']:>9.2f}x end to end, "
              f"{e['ray_steady_ips'] / e['local_ips']:.2f}x steady")  # fmt: skip
        print(
            f"ray start-up  {e['ray_startup_s']:>9.1f} s to the first chunk; steady {e['ray_steady_ips']:,.0f} images/s"
        )
        print(f"same bytes    {e['same_bytes']}")
        w = bench_writers(args, tmp)
        finalize_ips = args.n / e["finalize_s"] if args.format != "folder" else float("inf")
        print(f"writer        {w['png_files_per_s']:,.0f} PNG files/s created, {w['png_encode_per_s']:,.0f} PNGs/s "
              f"encoded (one thread); {w['array_mb_per_s']:,.0f} MB/s of chunk arrays"
              + (f"; npz finalize {finalize_ips:,.0f} images/s" if args.format != "folder" else ""))  # fmt: skip
        per_node = e["ray_steady_ips"]
        print(f"scaling from {per_node:,.0f} images/s per {args.cpus}-CPU node (ray steady):")
        for line in scaling(per_node, w, finalize_ips):
            print("  " + line)
        if args.train_steps:
            if args.data is None:
                raise SystemExit("--train-steps needs --data")
            one, two = train_steps_per_s(args, tmp, 1), train_steps_per_s(args, tmp, 2)
            print(f"training      1 node x 2 procs {one:.2f} steps/s; 2 nodes x 1 proc {two:.2f} steps/s "
                  f"({two / one:.2f}x)")  # fmt: skip
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
