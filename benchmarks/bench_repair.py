"""A repair / super-resolution preset trained for a budget, with its L1-only twin (adv_weight 0) trained
the same way, both measured by `gan evaluate`'s repair report beside the classical baselines.

Prints one markdown table (method | PSNR | SSIM | FID | labels kept) and the run facts (steps, wall
time, load average: the machine is shared, so the figures of a short run are the run's, not the
preset's). --grid writes the picture damaged | baselines | L1-only | GAN | truth.

    python benchmarks/bench_repair.py --preset mnist-sr4 [--data DIR] [--minutes 2] [--n 2000] \
        [--threads 1] [--out runs/bench-repair] [--grid docs/repair-sr4.png]
    python benchmarks/bench_repair.py --runs GAN_RUN L1_RUN [--n 2000] [--grid ...]   # measure finished runs
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from gan_core.card_files import read_card
from gan_core.datasets import load_dataset
from gan_core.imaging import grid, png_bytes
from training.checkpoint import resolve_checkpoint
from training.config import preset
from training.evaluation.repair import comparison_grid, evaluate_repair
from training.trainer import Trainer


def train(name: str, out: Path, data, args, l1_only: bool) -> tuple[Path, int, float]:
    """(checkpoint, steps, wall s) of the preset (or its L1-only twin) trained within the budget."""
    base = preset(name)
    params = {**base.family_params, **({"adv_weight": 0.0} if l1_only else {})}
    if args.feature_evaluator:
        params["feature_evaluator"] = args.feature_evaluator
    arch = {**base.arch_params, **({"g_width": args.width, "d_width": args.width} if args.width else {}),
            **({"g_blocks": args.blocks} if args.blocks is not None else {})}  # fmt: skip
    cfg = preset(name, out=str(out), data=args.data, max_minutes=args.minutes, steps=args.steps or base.steps,
                 threads=args.threads, family_params=params, arch_params=arch, sample_every=10**9, ckpt_every=10**9)  # fmt: skip
    t0 = time.perf_counter()
    result = Trainer(cfg, data, progress=False).train()
    return result.checkpoint, result.step, time.perf_counter() - t0


def row(name: str, m: dict) -> str:
    acc = "-" if m["class_accuracy"] is None else f"{100 * m['class_accuracy']:.1f}%"
    psnr = "-" if m["psnr"] is None else f"{m['psnr']:.2f}"
    ssim = "-" if m["ssim"] is None else f"{m['ssim']:.3f}"
    return f"| {name} | {psnr} | {ssim} | {m['fid']:.2f} | {acc} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mnist-sr4")
    ap.add_argument("--data", help="training data (default MNIST); its test split is measured")
    ap.add_argument("--minutes", type=float, default=2.0, help="training budget per run")
    ap.add_argument("--steps", type=int, help="step cap per run (default: the preset's)")
    ap.add_argument("--n", type=int, default=2000, help="test images measured")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width", type=int, help="G and D widths (default: the preset's; tiny smoke runs)")
    ap.add_argument("--blocks", type=int, help="G's residual blocks (default: the preset's)")
    ap.add_argument(
        "--feature-evaluator", help="evaluator of the feature loss (default: the one bound to the data)"
    )
    ap.add_argument("--out", default="runs/bench-repair")
    ap.add_argument(
        "--runs",
        nargs=2,
        metavar=("GAN_RUN", "L1_RUN"),
        help="measure these two finished runs (the GAN and its L1-only twin) instead of training them",
    )
    ap.add_argument("--grid", help="write damaged | baselines | L1-only | GAN | truth here (PNG)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = None if args.runs else load_dataset(args.data, "train")
    load0 = os.getloadavg()[0]
    out = Path(args.out)
    reports, facts = {}, {}
    for k, (label, l1) in enumerate((("GAN", False), ("L1-only", True))):
        if args.runs:
            ckpt = resolve_checkpoint(args.runs[k])
            steps, wall = read_card(ckpt).steps, None
        else:
            ckpt, steps, wall = train(args.preset, out / f"{args.preset}-{label.lower()}", data, args, l1)
        facts[label] = (steps, wall)
        reports[label] = evaluate_repair(ckpt, args.data, args.n, 0)
    gan_report, images = reports["GAN"]
    l1_report, l1_images = reports["L1-only"]
    what = f"runs {' and '.join(args.runs)}" if args.runs else f"preset {args.preset}"
    budget = "finished runs" if args.runs else f"budget {args.minutes:g} min per run"
    print(
        f"{what}: {gan_report['task']}, corruption {gan_report['corruption']}, threads {args.threads}, {budget}"
    )
    for label, (steps, wall) in facts.items():
        print(f"{label}: {steps} steps" + ("" if wall is None else f" in {wall:.0f} s"))
    print(f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    print(
        f"n={gan_report['n']} test images, evaluator {gan_report['evaluator']}, FID floor {gan_report['fid_floor']:.2f}"
    )
    print("| method | PSNR (dB) | SSIM | FID | labels kept |")
    print("|---|---|---|---|---|")
    for name, m in gan_report["methods"].items():
        if name != "gan":
            print(row(name, m))
    print(row("L1-only G", l1_report["methods"]["gan"]))
    print(row("GAN (L1 + adversarial)", gan_report["methods"]["gan"]))
    print(
        f"GAN PSNR - L1-only PSNR: {gan_report['methods']['gan']['psnr'] - l1_report['methods']['gan']['psnr']:+.2f} dB"
    )
    if args.grid:
        cells, cols, names = comparison_grid(images, before_gan={"L1-only": l1_images["gan"]})
        Path(args.grid).write_bytes(png_bytes(grid(np.ascontiguousarray(cells), cols), scale=3))
        print(f"{args.grid} rows, top to bottom: {', '.join(names)}")


if __name__ == "__main__":
    main()
