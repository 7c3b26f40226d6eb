"""What an FID ratio means for a dataset's evaluator: real training images, lightly perturbed, measured.

Each row takes the same n real training images (the ones the real-vs-real floor uses), applies one
perturbation a person would barely see or not see at all (a slight blur, pixel noise, a one-pixel
shift, a 2x down-and-up resize, 10% less contrast), and reports the full `gan evaluate` metrics
against the data's test split with the data's own evaluator. The ratio column is the yardstick for
reading a generator's "FID within Nx of the floor": a model scoring 300x is about as far from the
real images as a sigma 0.5 blur of them, for instance, on an evaluator that weighs fine texture
heavily.

    python benchmarks/bench_fid_sensitivity.py [--data DIR] [--n 10000] [--threads 2] [--also DIR ...]

--also adds a row per image set (its training split, same subset), e.g. the demo scenes without
their pixel noise: `gan make-demo-data --out demo32-clean --pixel-noise 0`.

--data defaults to MNIST; the data needs its evaluator first (`gan train-evaluator --data DIR`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(3 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of float [N, C, H, W] with edge padding."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return x


def noise(x: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    return x + np.random.default_rng(seed).normal(0, std, x.shape)


def shift(x: np.ndarray, px: int = 1) -> np.ndarray:
    """Content moved px pixels right and down, edges repeated."""
    p = np.pad(x, [(0, 0), (0, 0), (px, 0), (px, 0)], mode="edge")
    return p[:, :, : x.shape[2], : x.shape[3]]


def down_up(x: np.ndarray, f: int = 2) -> np.ndarray:
    """Box-downsample by f, then nearest-neighbour back up (half the resolution, same size)."""
    n, c, h, w = x.shape
    small = x[:, :, : h - h % f, : w - w % f].reshape(n, c, h // f, f, w // f, f).mean((3, 5))
    up = small.repeat(f, 2).repeat(f, 3)
    return np.pad(up, [(0, 0), (0, 0), (0, h - up.shape[2]), (0, w - up.shape[3])], mode="edge")


def contrast(x: np.ndarray, factor: float) -> np.ndarray:
    mean = x.mean((1, 2, 3), keepdims=True)
    return (x - mean) * factor + mean


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none (the floor)": lambda x: x,
    "noise std 4 levels": lambda x: noise(x, 4),
    "noise std 8 levels": lambda x: noise(x, 8),
    "noise std 16 levels": lambda x: noise(x, 16),
    "blur sigma 0.5 px": lambda x: blur(x, 0.5),
    "blur sigma 0.8 px": lambda x: blur(x, 0.8),
    "blur sigma 1.2 px": lambda x: blur(x, 1.2),
    "shift 1 px": shift,
    "2x down, up": down_up,
    "contrast x0.9": lambda x: contrast(x, 0.9),
}


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="dataset (default: MNIST)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--also", nargs="*", default=[], help="more image sets to measure (their train split)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("GAN_ORT_THREADS", str(args.threads))
    from gan_core.datasets import default_mnist_path, load_dataset
    from training.evaluation.report import evaluate_samples
    from training.evaluation.sampling import Samples, subset_indices
    from training.evaluation.store import evaluation_splits

    args.data = args.data or str(default_mnist_path())  # a path: the reference never guesses from a target
    train = evaluation_splits(args.data).train  # the images the floor is measured on
    idx = subset_indices(len(train), args.n, args.seed)
    real = train.images[idx].astype(np.float64)
    labels = train.labels[idx] if train.labelled else None
    print(f"data {train.source}: {len(idx)} training images {train.image_shape}, seed {args.seed}")
    print(
        "| perturbation of real training images | FID | x floor | precision | recall | coverage | class acc. |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = [(name, lambda fn=fn: to_uint8(fn(real))) for name, fn in PERTURBATIONS.items()]
    rows += [(f"the set {p}", lambda p=p: load_dataset(p, "train").images[idx]) for p in args.also]
    for name, make in rows:
        images = make()
        samples = Samples(images, labels, "npz", Path(f"<{name}>"))
        r = evaluate_samples(samples, args.data, seed=args.seed)
        acc = r.get("class_accuracy")
        acc_s = f"{acc * 100:.2f}%" if acc is not None else "n/a"
        print(
            f"| {name} | {r['fid']:.2f} | {r['fid'] / r['fid_floor']:.1f}x | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['coverage']:.3f} | {acc_s} |",
            flush=True,
        )
    print(f"evaluator {r['evaluator']}, floor {r['fid_floor']:.3f} (n={r['n']})")


if __name__ == "__main__":
    main()
