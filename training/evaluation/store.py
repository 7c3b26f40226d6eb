"""Which evaluator measures which data: the shipped evaluators plus the user's store, found by data fingerprint.

An evaluator is bound to the dataset it was trained on (its card's `dataset`: the fingerprint of
the training split as loaded, i.e. what a generator's card records as `dataset.fingerprint`, and
how its test split was made). `gan train-evaluator --data D` and `gan train --evaluator auto`
train one for any dataset and put it in the store (`$GAN_EVALUATOR_DIR`, default
~/.cache/gan-service/evaluators) unless told where; lookups search training/evaluation/weights/ first.
Data without a test split gets a seeded, per-class 10% held-out split (gan_core.datasets.holdout_split),
the same one evaluation later uses as its reference.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_core.datasets import ImageDataset, default_mnist_path, has_split, holdout_split, load_dataset
from gan_core.preprocess import Preprocess
from training.evaluation.classifier import (
    EVALUATOR_DIR,
    DataBinding,
    EvaluationError,
    Evaluator,
    EvaluatorCard,
    load_evaluator,
    save_evaluator,
    train_evaluator,
)

HOLDOUT_FRACTION, HOLDOUT_SEED = 0.1, 0
TARGET_STEPS = 2000  # optimizer steps an evaluator gets by default (epochs = this / batches per epoch)
MAX_AUTO_EPOCHS = 30
MNIST_FINGERPRINT = "d18cfd466eb143ac"  # MNIST's training split (the shipped evaluator's binding)


def store_dir() -> Path:
    return Path(os.environ.get("GAN_EVALUATOR_DIR") or Path.home() / ".cache" / "gan-service" / "evaluators")


def evaluator_dirs() -> list[Path]:
    return [EVALUATOR_DIR, store_dir()]


@dataclass
class EvalSplits:
    """A dataset as evaluation sees it: `full` = the training split (what generators train on and what
    binds an evaluator), `train` / `test` = what the evaluator learns from / is tested on, and the
    reference of FID (`test`) and of its floor (`train`)."""

    full: ImageDataset
    train: ImageDataset
    test: ImageDataset
    test_info: dict[str, Any]
    source: str | None
    prep: Preprocess


def _held_out(full: ImageDataset, source, prep: Preprocess) -> EvalSplits:
    train, test = holdout_split(full, HOLDOUT_FRACTION, HOLDOUT_SEED)
    info = {
        "kind": "holdout",
        "fraction": HOLDOUT_FRACTION,
        "seed": HOLDOUT_SEED,
        "fingerprint": test.fingerprint(),
    }
    return EvalSplits(full, train, test, info, source, prep)


def evaluation_splits(source, prep: Preprocess | None = None) -> EvalSplits:
    """The data's own test split when it has one, else a held-out share of its training split.

    source: a data path (None = MNIST) loaded with `prep`, or an ImageDataset already in memory.
    """
    prep = prep or Preprocess()
    if isinstance(source, ImageDataset):
        return _held_out(source, source.source, prep)
    full = load_dataset(source, "train", prep=prep)
    src = None if source is None else str(source)
    if not has_split(source, "test"):
        return _held_out(full, src, prep)
    test = load_dataset(source, "test", prep=prep)
    if test.image_shape != full.image_shape or test.class_names != full.class_names:
        raise EvaluationError(f"{full.source}: train and test splits differ in image shape or classes")
    return EvalSplits(full, full, test, {"kind": "split", "fingerprint": test.fingerprint()}, src, prep)


def binding(splits: EvalSplits) -> DataBinding:
    ds = splits.full
    return DataBinding(
        name=ds.name, source=splits.source or ds.source, fingerprint=ds.fingerprint(), test=splits.test_info,
        classes=list(ds.class_names), labelled=ds.labelled, preprocess=splits.prep.describe(),
    )  # fmt: skip


def bound_cards() -> list[tuple[Path, EvaluatorCard]]:
    """(card path, card) of every readable evaluator card in the shipped folder and the store."""
    found = []
    for d in evaluator_dirs():
        for path in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                found.append((path, EvaluatorCard.model_validate_json(path.read_text())))
            except (OSError, ValueError):
                continue
    return found


def bound_evaluator(fingerprint: str | None) -> Evaluator | None:
    """The evaluator bound to the data with this fingerprint (shipped first, then the store), if any."""
    for path, card in bound_cards():
        if fingerprint and card.dataset is not None and card.dataset.fingerprint == fingerprint:
            return load_evaluator(path)
    return None


def data_source_of(fingerprint: str | None) -> str | None:
    """Where the data of this fingerprint was read from, per the evaluator bound to it (MNIST: its local copy)."""
    if fingerprint == MNIST_FINGERPRINT:
        return str(default_mnist_path())
    for _, card in bound_cards():
        if card.dataset is not None and card.dataset.fingerprint == fingerprint and card.dataset.source:
            if Path(card.dataset.source).exists():
                return card.dataset.source
    return None


def auto_epochs(n_train: int, batch_size: int) -> int:
    """Enough epochs for about TARGET_STEPS optimizer steps, 3..30."""
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return min(MAX_AUTO_EPOCHS, max(3, math.ceil(TARGET_STEPS / per_epoch)))


def default_id(ds: ImageDataset) -> str:
    return f"{ds.name}-cnn-{ds.fingerprint()[:8]}"


def train_for_data(
    source: str | os.PathLike | None,
    prep: Preprocess | None = None,
    out: str | os.PathLike | None = None,
    evaluator_id: str | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    train_n: int | None = None,
    test_n: int | None = None,
    width: int = 32,
    progress: bool = False,
    command: str | None = None,
    threads: int | None = None,
) -> tuple[EvaluatorCard, Path]:
    """Train the evaluator of a dataset (classes when labelled, else rotations) and write it; returns (card, stem)."""
    import torch

    t0 = time.perf_counter()
    splits = evaluation_splits(source, prep)
    train, test = splits.train, splits.test
    task = "classes" if train.labelled and train.num_classes >= 2 else "rotation"
    tn, vn = train_n or len(train), test_n or len(test)
    epochs = epochs or auto_epochs(tn, batch_size)
    net, stats = train_evaluator(
        train.images[:tn], train.labels[:tn], test.images[:vn], test.labels[:vn], train.class_names,
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, width=width, progress=progress, task=task,
    )  # fmt: skip
    evaluator_id = evaluator_id or default_id(splits.full)
    stem = Path(out) if out is not None else store_dir() / evaluator_id
    bind = binding(splits)
    training = {"data": {"source": bind.source, "fingerprint": bind.fingerprint, "test_fingerprint": bind.test["fingerprint"]},
                "test_split": bind.test["kind"], "threads": threads or torch.get_num_threads(), "torch": torch.__version__,
                "command": command, "total_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    card = save_evaluator(
        net, stats, stem, evaluator_id, train.class_names, train.image_shape, training, bind
    )
    return card, stem


def resolve_evaluator(choice: str | None, splits: EvalSplits) -> Evaluator:
    """`auto` (or None): the evaluator bound to the reference data; else a shipped name or a path stem."""
    if choice in (None, "auto"):
        ev = bound_evaluator(splits.full.fingerprint())
        if ev is None:
            ds = splits.full
            raise EvaluationError(
                f"{ds.source}: no evaluator is bound to this data (fingerprint {ds.fingerprint()}); train one with "
                f"`gan train-evaluator --data {splits.source or ds.source}` or pass --evaluator NAME"
            )
        return ev
    return load_evaluator(choice)


def matches(ev: Evaluator, ds: ImageDataset) -> bool:
    """True when `ev` is bound to exactly this data (its training or test split)."""
    b = ev.card.dataset
    return b is not None and ds.fingerprint() in (b.fingerprint, b.test.get("fingerprint"))
