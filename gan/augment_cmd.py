"""Generate a synthetic dataset with a generator (local .onnx or the HTTP service), resumable and shardable.

`gan augment` is `python -m augment augment` plus `--report`, which then trains the evaluator on
real / real+synthetic / synthetic data: the job itself is torch-free, the report needs torch.
"""

from __future__ import annotations

import argparse

from augment import cli


def add_arguments(p: argparse.ArgumentParser) -> None:
    cli.add_arguments(p)
    p.add_argument(
        "--report",
        action="store_true",
        help='then train the evaluator on real / real+synthetic / synthetic data ("does it help?"; needs torch)',
    )


def run(args: argparse.Namespace) -> int:
    from gan_core.errors import UserError

    if args.report and args.num_shards != 1:
        raise UserError("--report: needs the whole dataset (merge the shards, then run `gan augment-report`)")
    cli.run(args)
    if args.report:
        from training.augment_report import print_report, run_report

        print_report(run_report(args.out, data=args.data))
    return 0
