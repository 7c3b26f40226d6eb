"""Time `evaluate_target` on 10k images (target: < 60 s on 2 CPU cores) and print the figures.

Three cases, measured side by side in one run:
  data-cold   10k real training digits, empty reference cache (real features + k-NN radii computed)
  data-warm   the same with the cache filled (what repeated evaluations pay)
  checkpoint  10k samples of an untrained default mnist-cdcgan generator (sampling included), warm cache

    nice -n 10 python benchmarks/bench_evaluate.py [--n 10000] [--threads 2] [--data DATA]

--data measures another labelled dataset (it needs its evaluator: `gan train-evaluator --data DATA`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None, help="dataset (default: MNIST)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ["GAN_ORT_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GAN_EVAL_CACHE"] = str(Path(tmp) / "cache")
        from gan_core.datasets import load_dataset
        from training import evaluation
        from training.config import preset
        from training.evaluation import evaluate_target
        from training.trainer import Trainer

        ds = load_dataset(args.data, "train")
        trainer = Trainer(preset("mnist-cdcgan", out=str(Path(tmp) / "run"), steps=0), ds, progress=False)
        ckpt = trainer.train().checkpoint

        rows = []
        for name, target, clear in (
            ("data-cold", ds.source, True),
            ("data-warm", ds.source, False),
            ("checkpoint", ckpt, False),
        ):
            if clear:
                evaluation.reference._REFS.clear()
            t0 = time.perf_counter()
            r = evaluate_target(target, n=args.n)
            rows.append((name, time.perf_counter() - t0, r))
        print(
            f"evaluate_target, n={args.n}, torch threads={args.threads}, cpu count={os.cpu_count()}, evaluator {rows[0][2]['evaluator']}"
        )
        print(f"{'case':<11} {'seconds':>8} {'fid':>9} {'coverage':>9}")
        for name, secs, r in rows:
            print(f"{name:<11} {secs:8.1f} {r['fid']:9.3f} {r['coverage']:9.3f}")
        print(f"target < 60 s per 10k images: {'met' if max(s for _, s, _ in rows) < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
