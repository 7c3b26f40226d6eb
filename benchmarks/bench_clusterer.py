"""How fast InfoGAN's clusterer learns a labelled dataset's classes, without reading the labels.

Runs the real Trainer on the `mnist-infogan` preset with its clustering phase stretched over the whole
run (only the clusterer trains: the same cluster steps, data order, warps and optimiser as in a run),
and every `--every` seconds of training measures the head the family reads (lowest running IIC loss)
on the test split: its one-to-one (Hungarian) accuracy against the labels, which training never sees.
One line per seed and settings; `--heads` / `--lamb` compare the settings the preset chose.
`--run RUN` instead scores the frozen clusterer of a finished InfoGAN run (its newest checkpoint).

    python benchmarks/bench_clusterer.py --seeds 0,1,2,3 --seconds 200 --threads 1 [--heads 15] [--lamb 1.5]
    python benchmarks/bench_clusterer.py --run runs/mnist-infogan
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from gan_core.datasets import load_dataset
from training.checkpoint import checkpoint_family, load_checkpoint
from training.config import preset
from training.evaluation.codes import code_assignment
from training.trainer import Trainer


def clusterer_accuracy(clusterer: torch.nn.Module, images: np.ndarray, labels: np.ndarray, names) -> float:
    """Hungarian accuracy of the clusterer's read head on uint8 images [N, C, H, W]."""
    pred = []
    for i in range(0, len(images), 1000):
        x = torch.from_numpy(images[i : i + 1000]).float().div_(127.5).sub_(1.0)
        pred.append(clusterer.labels(x).numpy())
    return code_assignment(np.concatenate(pred), labels, clusterer.k, names)["accuracy"]


def run(seed: int, heads: int, lamb: float, seconds: float, every: float, threads: int, data) -> list:
    """[(training seconds, steps, accuracy)] of one clusterer run."""
    train, test = load_dataset(data), load_dataset(data, split="test")
    params = {"self_condition": True, "cluster_steps": 10**9, "cluster_heads": heads, "cluster_lamb": lamb}
    with tempfile.TemporaryDirectory() as out:
        cfg = preset("mnist-infogan", out=out, seed=seed, threads=threads, family_params=params, steps=0,
                     eval_every=0, sample_every=10**9, ckpt_every=10**9, log_every=10**9)  # fmt: skip
        trainer = Trainer(cfg, train, progress=False)
        clusterer, points, spent, steps = trainer.family.nets["c"], [], 0.0, 0
        while spent < seconds:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < every:
                steps += 10
                trainer.cfg = trainer.cfg.model_copy(update={"steps": steps})
                trainer.train(finalize=False)
            spent += time.perf_counter() - t0
            points.append(
                (spent, steps, clusterer_accuracy(clusterer, test.images, test.labels, test.class_names))
            )
    return points


def run_clusterer(run_dir: str) -> tuple[int, torch.nn.Module]:
    """(step, clusterer) of an InfoGAN run's newest checkpoint."""
    ckpt = load_checkpoint(run_dir)
    nets = checkpoint_family(ckpt).build_nets()
    if "c" not in nets:
        raise SystemExit(f"{run_dir}: its family has no clusterer (family_params.cluster_steps is 0)")
    nets["c"].load_state_dict(ckpt.state("c"))
    return ckpt.step, nets["c"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--heads", type=int, default=15)
    ap.add_argument("--lamb", type=float, default=1.5)
    ap.add_argument("--seconds", type=float, default=200.0)
    ap.add_argument("--every", type=float, default=40.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="a labelled dataset with a test split (default: MNIST)")
    ap.add_argument("--run", default=None, help="score the clusterer of this finished InfoGAN run instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        step, clusterer = run_clusterer(args.run)
        test = load_dataset(args.data, split="test")
        acc = clusterer_accuracy(clusterer, test.images, test.labels, test.class_names)
        print(f"{args.run} (step {step}): head {clusterer.best_head()}, test-split accuracy {acc:.2%}")
        return
    print(
        f"clusterer: {args.heads} heads, lamb {args.lamb}, {args.threads} thread(s); test-split accuracy at"
    )
    for seed in map(int, args.seeds.split(",")):
        points = run(seed, args.heads, args.lamb, args.seconds, args.every, args.threads, args.data)
        trail = "  ".join(f"{t:.0f}s/{n} steps: {a:.1%}" for t, n, a in points)
        print(f"seed {seed}: {trail}", flush=True)


if __name__ == "__main__":
    main()
