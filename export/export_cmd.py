"""Export a checkpoint's generator to a verified ONNX file (fp32, or an fp16 / int8 variant)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from export.onnx_export import PRECISIONS

    p.add_argument(
        "checkpoint", help="checkpoint file (ckpt-*.safetensors) or run folder (its newest checkpoint)"
    )
    p.add_argument("--out", required=True, help="output .onnx file (written only after it verified)")
    p.add_argument(
        "--direction",
        help="translation models (cyclegan): a2b or b2a writes that direction to --out; default: both, "
        "as OUT-a2b.onnx and OUT-b2a.onnx",
    )
    # Not argparse `choices`: an unknown variant gets the same one-line error as any other bad input.
    p.add_argument("--variant", default="fp32", help=f"{' | '.join(PRECISIONS)} (default: %(default)s)")
    add_gate_arguments(p)
    p.add_argument(
        "--plain-graph", action="store_true",
        help="keep ORT's ConvTranspose instead of the phase-Conv rewrite (slower; for comparison and debugging)",
    )  # fmt: skip


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    """The variant gate's flags (FID budget and sample count) and the verification threads; `gan bundle` takes them too."""
    from export.onnx_export import DEFAULT_FID_BUDGET, DEFAULT_FID_N

    p.add_argument(
        "--fid-budget", type=float, default=DEFAULT_FID_BUDGET,
        help="refuse an fp16/int8 variant whose FID exceeds the fp32 export's by more than this fraction (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--fid-n",
        type=int,
        default=DEFAULT_FID_N,
        help="images for the variant FID check; 0 skips it (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="ONNX Runtime threads for verification (default: GAN_ORT_THREADS or all cores)",
    )


def run(args: argparse.Namespace) -> int:
    from export.onnx_export import checkpoint_directions, direction_paths, export_checkpoint

    if args.direction in (None, "both"):
        directions = checkpoint_directions(args.checkpoint)
        paths = direction_paths(args.out, directions) if directions else {None: args.out}
    else:
        paths = {args.direction: args.out}
    for direction, out in paths.items():
        card = export_checkpoint(
            args.checkpoint,
            out,
            args.variant,
            fid_budget=args.fid_budget,
            fid_n=args.fid_n,
            threads=args.threads,
            rewrite=not args.plain_graph,
            direction=direction,
        )
        e = card.export
        fid = f"; fid {e.fid:.2f} vs fp32 {e.fid_fp32:.2f} (n={e.fid_n})" if e.fid is not None else ""
        print(
            f"wrote {out}: {card.name} step {card.steps}, {e.precision}, opset {e.opset}, "
            f"parity {e.parity_max_abs_diff:g} levels / {e.float_parity_max_abs_diff:.2g} float on batches {e.parity_batches}{fid}"
        )
    return 0
