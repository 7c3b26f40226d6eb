"""Data loading cost at 64x64x3: decoding an image folder once (and reading it back cached), and the
share of training step time the real Trainer spends getting batches.

A colour image folder (the procedural demo set, `gan make-demo-data`, unless --data is given) is
decoded into the data cache, then read back from the cache; then the real Trainer loop of the
data-sized `cdcgan` preset runs with its batch sampler timed (the same index + uint8 -> float
conversion every step does), with the cached array in memory and memory-mapped
(GAN_DATA_RAM_BUDGET=1, so the copy-on-write map is used). Share = sampler seconds / loop seconds.

    python benchmarks/bench_data.py [--size 64] [--n 10000] [--steps 60] [--threads 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gan_core.datasets import load_dataset
from gan_core.demo_data import write_demo_data
from training.config import preset
from training.sizing import fit_to_data
from training.trainer import Trainer


def timed_sampler(trainer: Trainer) -> list[float]:
    """Wrap the trainer's batch sampler so every call's seconds are recorded."""
    spent: list[float] = []
    inner = trainer.sampler.get

    def get(k: int):
        t0 = time.perf_counter()
        out = inner(k)
        spent.append(time.perf_counter() - t0)
        return out

    trainer.sampler.get = get
    return spent


def loop_share(ds, steps: int, threads: int, out: str) -> tuple[float, float, int]:
    """(loop seconds, sampler seconds, batches) of `steps` real trainer steps after a warm-up."""
    cfg = preset("cdcgan", out=out, ckpt_every=10**9, sample_every=10**9, eval_every=0, threads=threads)
    cfg = fit_to_data(cfg, ds.image_shape, ds.labelled, ds.source)
    trainer = Trainer(cfg, ds, progress=False)
    trainer.cfg = trainer.cfg.model_copy(update={"steps": 5})
    trainer.train(finalize=False)  # warm-up
    spent = timed_sampler(trainer)
    trainer.cfg = trainer.cfg.model_copy(update={"steps": 5 + steps})
    t0 = time.perf_counter()
    trainer.train(finalize=False)
    return time.perf_counter() - t0, sum(spent), len(spent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=10_000, help="demo images to write when --data is not given")
    ap.add_argument("--data", help="an image folder to use instead of the demo set")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GAN_DATA_CACHE"] = str(Path(tmp) / "cache")
        data = args.data
        if data is None:
            data = str(Path(tmp) / "demo")
            t0 = time.perf_counter()
            write_demo_data(data, size=args.size, n_train=args.n, n_test=10)
            print(f"wrote {args.n} demo PNGs ({args.size}x{args.size}x3) in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        ds = load_dataset(data)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(data)
        warm = time.perf_counter() - t0
        mb = ds.images.nbytes / 2**20
        print(f"{data}: {len(ds)} images {ds.image_shape}, {mb:.0f} MiB uint8")
        print(
            f"decode once into the cache: {cold:.2f}s ({len(ds) / cold:.0f} images/s); cached read: {warm:.3f}s"
        )
        rows = [("in memory", ds)]
        os.environ["GAN_DATA_RAM_BUDGET"] = "1"
        mapped = load_dataset(data)
        assert type(mapped.images).__name__ == "memmap"
        rows.append(("memory-mapped", mapped))
        print(f"{'array':<15}{'steps':>7}{'loop s':>9}{'batch ms':>10}{'step ms':>9}{'data share':>12}")
        for name, d in rows:
            total, data_s, batches = loop_share(
                d, args.steps, args.threads, str(Path(tmp) / name.replace(" ", "-"))
            )
            print(
                f"{name:<15}{args.steps:>7}{total:>9.2f}{1000 * data_s / batches:>10.2f}"
                f"{1000 * total / args.steps:>9.1f}{100 * data_s / total:>11.2f}%"
            )
    print("target: data loading < 5% of step time at 64x64x3")


if __name__ == "__main__":
    main()
