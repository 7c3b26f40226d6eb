"""Merge the outputs of `gan augment --shard i --num-shards n` into one dataset (same bytes as one machine)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dirs", nargs="+", metavar="DIR", help="shard output folders (one folder = finalize it in place)"
    )
    p.add_argument("--out", help="folder to write the merged dataset to (default: the only DIR)")


def run(args: argparse.Namespace) -> int:
    from augment.merge import merge_outputs

    result = merge_outputs(args.dirs, args.out)
    print(
        f"merged {result.config.total} images ({result.generated} copied) into {result.out} in {result.seconds:.1f}s; job {result.config.config_hash()}"
    )
    return 0
