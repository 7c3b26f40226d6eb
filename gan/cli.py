"""The `gan` command. Each subcommand lives in its own module with `add_arguments` and `run`.

Expected user errors (bad paths, corrupt files, bad flags) print one line and exit 2;
nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gan_core.errors import UserError, one_line, user_errors

# name -> module implementing add_arguments(parser) and run(args) -> int
SUBCOMMANDS = {
    "train": "training.train_cmd",
    "presets": "training.presets_cmd",
    "augment": "gan.augment_cmd",
    "augment-merge": "augment.merge_cmd",
    "augment-report": "training.augment_report",
    "train-evaluator": "training.train_evaluator_cmd",
    "evaluate": "training.evaluate_cmd",
    "evaluate-translation": "training.evaluate_translation_cmd",
    "export": "export.export_cmd",
    "bundle": "export.bundle_cmd",
    "make-demo-data": "gan.demo_data_cmd",
    "make-domain-pair": "gan.domain_pair_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan", description="Train, evaluate, export and use GAN image generators."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError as e:  # a serving-only install (no torch) still gets the torch-free commands
            p = sub.add_parser(name, help=f"(unavailable: {e.name} is not installed)", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(_run=_missing_extra(name, e.name))
            continue
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _missing_message(command: str, package: str | None) -> str:
    return (
        f"'gan {command}' needs {package or 'the training extras'}: "
        "pip install torch==2.13.0 && pip install 'gan-service[train]'"
    )


def _missing_extra(command: str, package: str | None):
    def run(args) -> int:
        raise UserError(_missing_message(command, package))

    return run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except user_errors() as e:
        print(f"gan {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # a torch-side command on a serving-only install
        print(f"gan {args.command}: error: {_missing_message(args.command, e.name)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
