"""Bundle one exported model per generative preset (fp16 where its gates pass) into a models folder.

RUNS holds one evaluated run per preset (RUNS/mnist-lsgan, ...: `gan train --preset P --out RUNS/P`,
then `gan evaluate RUNS/P --n 10000`); the folder's default model stays its default.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from export.bundle import DEFAULT_LIMIT_MB
    from export.export_cmd import add_gate_arguments

    p.add_argument("runs", help="folder of runs, one subfolder per preset (RUNS/<preset>)")
    p.add_argument("--out", required=True, help="models folder to bundle into (e.g. service/models)")
    p.add_argument(
        "--presets",
        help="comma-separated presets (default: every mnist-* preset of a family that generates from a seed)",
    )
    p.add_argument(
        "--limit-mb", type=float, default=DEFAULT_LIMIT_MB,
        help="refuse a bundle whose folder would hold more than this many MB (default: %(default)g)",
    )  # fmt: skip
    p.add_argument(
        "--skip-missing", action="store_true", help="bundle the others when a run is missing or not evaluated"
    )
    p.add_argument(
        "--default",
        help="the model a request without `model` gets (default: the folder's default-model.txt, "
        "else its only model)",
    )
    p.add_argument(
        "--replace-default", action="store_true", help="re-export the default model too (kept by default)"
    )
    add_gate_arguments(p)  # fp16 is refused (fp32 bundled) where the gate says so
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from export.bundle import bundle, folder_bytes

    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else None
    rows, skipped = bundle(
        args.runs, args.out, presets,
        limit_mb=args.limit_mb, skip_missing=args.skip_missing, default=args.default,
        replace_default=args.replace_default, fid_budget=args.fid_budget, fid_n=args.fid_n,
        threads=args.threads, progress=not args.no_progress,
    )  # fmt: skip
    print(table(rows, folder_bytes(Path(args.out)), args.limit_mb))
    for line in skipped:
        print(f"skipped {line}")
    return 0


def table(rows: list, total_bytes: int, limit_mb: float) -> str:
    """export.bundle's rows as a table (files MB: the .onnx with its card, grid and curves; s: export seconds)."""
    from export.bundle import MB

    head = ("model", "family / loss", "precision", "onnx MB", "files MB", "FID", "x floor", "s",
            "why fp32 / note")  # fmt: skip
    lines = [head]
    for r in rows:
        lines.append((
            r.name, r.family, r.precision, f"{r.onnx_bytes / MB:.2f}", f"{r.total_bytes / MB:.2f}",
            f"{r.fid:.2f}" if r.fid is not None else "-",
            f"{r.fid / r.fid_floor:.1f}" if r.fid is not None and r.fid_floor else "-",
            f"{r.seconds:.0f}" if r.seconds is not None else "-", r.note,
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    ]
    text.append(f"{len(rows)} models, {total_bytes / MB:.1f} MB in all, limit {limit_mb:g} MB")
    return "\n".join(text)
