"""Train the evaluator classifier (the feature space of `gan evaluate`) and write weights + card."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="IDX folder or image folder with train and test splits; default: MNIST")
    p.add_argument("--out", required=True, help="output stem: writes OUT.safetensors and OUT.json")
    p.add_argument(
        "--id", default="mnist-cnn-v1", help="evaluator id every report will name (default: %(default)s)"
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-n", type=int, help="use only the first N training images")
    p.add_argument("--test-n", type=int, help="measure accuracy on the first N test images")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from gan_core.datasets import load_dataset
    from gan_core.errors import UserError
    from training.evaluator import save_evaluator, train_evaluator

    for flag in ("epochs", "batch_size", "train_n", "test_n", "threads"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    torch.set_num_threads(args.threads)
    train = load_dataset(args.data, "train")
    test = load_dataset(args.data, "test")
    if train.fingerprint() == test.fingerprint():
        raise UserError(
            f"{train.source}: no separate test split to measure accuracy on (give an IDX folder or train/ + test/ image folders)"
        )
    if train.image_shape != test.image_shape or train.class_names != test.class_names:
        raise UserError(f"{train.source}: train and test splits differ in image shape or classes")
    tn, vn = args.train_n or len(train), args.test_n or len(test)
    net, stats = train_evaluator(
        train.images[:tn], train.labels[:tn], test.images[:vn], test.labels[:vn], train.class_names,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=not args.no_progress,
    )  # fmt: skip
    command = (
        "gan train-evaluator " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["train-evaluator"]
        else None
    )
    training = {"data": {"source": train.source, "fingerprint": train.fingerprint(), "test_fingerprint": test.fingerprint()},
                "threads": args.threads, "torch": torch.__version__, "command": command}  # fmt: skip
    card = save_evaluator(net, stats, Path(args.out), args.id, train.class_names, train.image_shape, training)
    print(
        f"evaluator {card.id}: test accuracy {card.test_accuracy:.4f} on {card.test_n} images, {stats['seconds']:.0f}s; wrote {Path(args.out).with_suffix('.safetensors')} and .json"
    )
    return 0
