"""Train the evaluator of a dataset (the feature space of `gan evaluate`) and write weights + card."""

from __future__ import annotations

import argparse
import shlex
import sys


def add_preprocess_arguments(p: argparse.ArgumentParser) -> None:
    """--image-size / --fit / --channels: the policy that brings every image to one size and mode."""
    p.add_argument(
        "--image-size", type=int, help="resize every image to N x N pixels (28, 32 or 64 for dcgan)"
    )
    p.add_argument(
        "--fit",
        choices=["crop", "stretch"],
        help="with --image-size: crop = scale the shorter side then cut the centre (default), stretch = ignore aspect",
    )
    p.add_argument(
        "--channels", type=int, choices=[1, 3], help="convert every image to grayscale (1) or RGB (3)"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        help="IDX folder, image folder (class subfolders, flat, or train/ + test/) or .npz; default: MNIST. "
        "Without a test split a seeded 10%% per class is held out for the test accuracy",
    )
    p.add_argument(
        "--out",
        help="output stem: writes OUT.safetensors and OUT.json (default: the evaluator store, $GAN_EVALUATOR_DIR "
        "or ~/.cache/gan-service/evaluators, where training and evaluation find it by the data's fingerprint)",
    )
    p.add_argument("--id", help="evaluator id every report will name (default: DATANAME-cnn-FINGERPRINT8)")
    p.add_argument("--epochs", type=int, help="default: about 2,000 optimizer steps (3..30 epochs)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-n", type=int, help="use only the first N training images")
    p.add_argument("--test-n", type=int, help="measure accuracy on the first N test images")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    add_preprocess_arguments(p)
    p.add_argument("--no-progress", action="store_true")


def preprocess_from_args(args: argparse.Namespace):
    from gan_core.preprocess import Preprocess

    return Preprocess(args.image_size, args.fit or "crop", args.channels)


def run(args: argparse.Namespace) -> int:
    import torch

    from gan_core.errors import UserError
    from training.evaluation.store import train_for_data

    for flag in ("epochs", "batch_size", "train_n", "test_n", "threads"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    torch.set_num_threads(args.threads)
    command = (
        "gan train-evaluator " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["train-evaluator"]
        else None
    )
    card, stem = train_for_data(
        args.data, preprocess_from_args(args), args.out, args.id, args.epochs, args.batch_size, args.lr, args.seed,
        args.train_n, args.test_n, progress=not args.no_progress, command=command, threads=args.threads,
    )  # fmt: skip
    split = "held-out 10% of the training split" if card.dataset.test["kind"] == "holdout" else "test split"
    what = (
        "rotation accuracy (self-supervised: the data has no labels)"
        if card.task == "rotation"
        else "test accuracy"
    )
    print(
        f"evaluator {card.id}: {what} {card.test_accuracy:.4f} on {card.test_n} images of the {split}, "
        f"{card.training['seconds']:.0f}s; bound to {card.dataset.name} ({card.dataset.fingerprint}); "
        f"wrote {stem.with_suffix('.safetensors')} and .json"
    )
    return 0
