"""Training throughput of the mnist-cyclegan preset, and translation throughput of its export.

Wall time depends on what else runs on the machine; CPU time per step (this process only) much less,
so both are printed with the load average, and the 10-minute estimate uses the wall rate.

    python benchmarks/bench_cyclegan.py --data-a PAIR/a --data-b PAIR/b [--steps 100] [--threads 2] [--onnx X-a2b.onnx]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from gan_core.datasets import load_dataset
from training.config import preset
from training.trainer import Trainer


def timed_steps(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(wall s, process CPU s) of `steps` more training steps."""
    trainer.cfg = trainer.cfg.model_copy(update={"steps": trainer.step + steps})
    w0, c0 = time.perf_counter(), time.process_time()
    trainer.train(finalize=False)
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-a", required=True)
    ap.add_argument("--data-b", required=True)
    ap.add_argument("--steps", type=int, default=100, help="timed steps (after 10 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", help="also time this exported direction on 10,000 images of --data-a")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a, b = load_dataset(args.data_a), load_dataset(args.data_b)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset("mnist-cyclegan", out=tmp, ckpt_every=10**9, sample_every=10**9, threads=args.threads)
        trainer = Trainer(cfg, a, progress=False, ds_b=b)
        timed_steps(trainer, 10)
        wall, cpu = timed_steps(trainer, args.steps)
    c = trainer.cfg
    print(f"preset mnist-cyclegan: {c.arch} {c.arch_params} batch {c.batch_size}, threads {args.threads}")
    print(f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f} (2 idle cores: < 1.5)")
    print(f"{args.steps / wall:.2f} steps/s wall ({args.steps * c.batch_size / wall:.0f} images/s per domain), "
          f"{cpu / args.steps:.3f} CPU s per step")  # fmt: skip
    print(f"10-minute budget at this rate: ~{600 * args.steps / wall:.0f} steps")
    if args.onnx:
        from gan_core.runtime import open_generator

        sess = open_generator(args.onnx, threads=args.threads, device="cpu")
        x = np.ascontiguousarray(a.images[:10_000].transpose(0, 2, 3, 1))
        sess.run({"image": x[:256]})
        t0 = time.perf_counter()
        for i in range(0, len(x), 256):
            sess.run({"image": x[i : i + 256]})
        print(f"{args.onnx}: {len(x) / (time.perf_counter() - t0):.0f} images/s (ONNX Runtime, batch 256)")


if __name__ == "__main__":
    main()
