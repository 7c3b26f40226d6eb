"""`python -m augment {augment,merge} ...`: the job's commands without the `gan` CLI.

The serving container has no torch, and `gan` loads every subcommand (some import torch), so the
container runs the job this way; flags are the same as `gan augment` / `gan augment-merge`.
"""

from __future__ import annotations

import argparse
import sys

from augment import cli, merge_cmd


def main(argv: list[str] | None = None) -> int:
    from gan_core.errors import one_line, user_errors

    parser = argparse.ArgumentParser(prog="python -m augment", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, mod in (("augment", cli), ("merge", merge_cmd)):
        p = sub.add_parser(name, help=mod.__doc__.splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except user_errors() as e:
        print(f"{parser.prog} {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
