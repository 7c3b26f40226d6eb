"""Evaluate a generator or image set: FID, classifier score, precision/recall, density/coverage, modes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target", help="checkpoint, run folder, .onnx, .npz (images[, labels]) or image / IDX folder"
    )
    p.add_argument(
        "--data",
        help="reference data (its test split, else a held-out 10%%); default: the generator's training data "
        "(its card's dataset, prepared as recorded), MNIST for image-set targets",
    )
    p.add_argument(
        "--n",
        type=int,
        default=10_000,
        help="samples (and reference images) to measure (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="latent seed / subset seed (default: %(default)s)")
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "test"],
        help="split of a data target (default: %(default)s)",
    )
    p.add_argument(
        "--evaluator",
        default="auto",
        help="auto = the evaluator bound to the reference data (train one with `gan train-evaluator --data D`); "
        "or a shipped name or path stem, for any target (default: %(default)s)",
    )
    p.add_argument("--out", help="write the JSON report here, and a sample grid PNG beside it")
    p.add_argument(
        "--cas",
        action="store_true",
        help="also the Classification Accuracy Score (trains a classifier, slower)",
    )
    p.add_argument(
        "--no-card", action="store_true", help="do not write the metrics into the checkpoint / ONNX card"
    )
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--threads", type=int, help="torch intra-op threads")


def run(args: argparse.Namespace) -> int:
    from gan_core.errors import UserError
    from training.evaluation import (
        evaluate_samples,
        sample_target,
        summary_line,
        write_card_metrics,
        write_report,
    )

    if args.n < 6:
        raise UserError(f"--n must be >= 6 (k-NN balls of k=5 need 6 points), got {args.n}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    from training.evaluation.repair import is_repair_target

    if is_repair_target(args.target):  # restoration / super-resolution: against the classical baselines
        return run_repair(args)
    samples = sample_target(args.target, args.n, args.seed, args.split)
    report = evaluate_samples(samples, args.data, None, args.seed, args.evaluator, args.cas)
    if args.out:
        out, png = write_report(report, samples, Path(args.out))
        print(f"wrote {out} and {png}")
    if samples.card is not None and not args.no_card:
        print(f"metrics written into the card of {write_card_metrics(samples, report)}")
    print(json.dumps(report, indent=2) if args.json else f"{samples.path}: {summary_line(report)}")
    return 0


def run_repair(args: argparse.Namespace) -> int:
    """`gan evaluate` of a repair model: PSNR, SSIM, FID and labels kept beside the baselines
    (training/evaluation/repair.py); --out writes the report and the grid damaged | baselines | GAN | truth."""
    from gan_core.fileio import atomic_write_bytes
    from gan_core.imaging import grid, png_bytes
    from training.evaluation.repair import comparison_grid, evaluate_repair, repair_summary

    report, images = evaluate_repair(args.target, args.data, args.n, args.seed, args.evaluator)
    if args.out:
        out = Path(args.out)
        atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
        cells, cols, _ = comparison_grid(images)
        atomic_write_bytes(out.with_suffix(".png"), png_bytes(grid(cells, cols), scale=2))
        print(f"wrote {out} and {out.with_suffix('.png')}")
    if not args.no_card:
        from training.evaluation.repair import open_card, repair_card_metrics
        from training.evaluation.results import write_metrics

        path, card = open_card(report["target"])
        print(f"metrics written into the card of {write_metrics(path, card, repair_card_metrics(report))}")
    print(json.dumps(report, indent=2) if args.json else repair_summary(report))
    return 0
