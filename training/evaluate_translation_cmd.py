"""Evaluate a translation model (cyclegan): labels kept, FID to the target domain, cycle error, per direction."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target", help="checkpoint or run folder, or one direction's .onnx (its partner beside it)"
    )
    p.add_argument(
        "--data-a",
        help="domain A data (its test split); default: where a checkpoint's run read it (needed for an .onnx)",
    )
    p.add_argument(
        "--data-b",
        help="domain B data (its test split); default: where a checkpoint's run read it (needed for an .onnx)",
    )
    p.add_argument("--evaluator-a", default="mnist", help="evaluator of domain A (default: %(default)s)")
    p.add_argument(
        "--evaluator-b",
        default="mnist",
        help="evaluator of domain B, e.g. one `gan train-evaluator` made on it",
    )
    p.add_argument("--n", type=int, default=2000, help="test images per direction (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="subset seed (default: %(default)s)")
    p.add_argument(
        "--out", help="write the JSON report here, and the grid source | translated | reconstructed beside it"
    )
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--threads", type=int, help="torch intra-op threads")


def run(args: argparse.Namespace) -> int:
    from gan_core.errors import UserError
    from gan_core.fileio import atomic_write_bytes
    from gan_core.imaging import png_bytes
    from training.evaluation.translation import evaluate_translation, summary_line, translation_grid

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    report, pair, tests = evaluate_translation(
        args.target, args.data_a, args.data_b, args.n, args.seed, args.evaluator_a, args.evaluator_b
    )
    if args.out:
        out = Path(args.out)
        atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
        atomic_write_bytes(out.with_suffix(".png"), png_bytes(translation_grid(pair, tests), scale=2))
        print(f"wrote {out} and {out.with_suffix('.png')}")
    print(json.dumps(report, indent=2) if args.json else f"{pair.path}: {summary_line(report)}")
    return 0
