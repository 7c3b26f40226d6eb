"""Build two unpaired image domains (A: the digits as they are, B: restyled) for `gan train --preset mnist-cyclegan`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gan_core.domain_pair import TRANSFORMS

    p.add_argument("--data", help="labelled dataset with train and test splits (default: MNIST)")
    p.add_argument("--out", required=True, help="writes OUT/a/{train,test}.npz and OUT/b/{train,test}.npz")
    p.add_argument(
        "--transform",
        default="thick",
        help=f"restyling of domain B: {' | '.join(TRANSFORMS)} (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from gan_core.domain_pair import make_domain_pair

    prints = make_domain_pair(args.data, args.out, args.transform)
    for d, splits in prints.items():
        print(f"{args.out}/{d}: " + ", ".join(f"{s} {fp}" for s, fp in splits.items()))
    return 0
