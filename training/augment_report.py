"""Does synthetic data help? Train the evaluator on real / real+synthetic / synthetic data and compare.

Three runs of the evaluator architecture (training.evaluation.classifier.train_evaluator) with the same
budget of optimizer steps, tested on the real test split: (a) a small stratified real subset
(1% of the training split by default), (b) that subset plus the synthetic images, (c) the
synthetic images only (the Classification Accuracy Score). Accuracies are printed side by side
and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices: round(fraction * count) (at least 1) random images of every class, seeded."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, round(fraction * len(members)))
        picks.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picks))


def synthetic_dataset(path: str | Path):
    """An augmentation output folder (its job.json says whether it is complete and labelled) or any dataset path."""
    from gan_core.datasets import load_dataset
    from gan_core.errors import UserError

    p = Path(path)
    job_file = p / "job.json"
    if job_file.is_file():
        try:
            job = json.loads(job_file.read_text())["config"]
        except (ValueError, KeyError) as e:
            raise UserError(f"{job_file}: not a readable augmentation job file ({e})") from None
        if not (p / "manifest.jsonl").is_file():
            raise UserError(
                f"{p}: the augmentation job is not complete (no manifest.jsonl); rerun or merge it first"
            )
        if not job.get("conditional") and not job.get("label_from"):
            raise UserError(
                f"{p}: images of an unconditional model carry no labels; the report needs a conditional generator (or --label-from code:NAME)"
            )
    return load_dataset(p, "train")


def _relabel(syn, real_names: list[str]):
    """Synthetic labels -> the real dataset's label ids, matched by class name."""
    from gan_core.errors import UserError

    missing = [n for n in syn.class_names if n not in real_names]
    if missing:
        raise UserError(
            f"{syn.source}: classes {missing} are not classes of the real data ({', '.join(real_names)})"
        )
    lut = np.array([real_names.index(n) for n in syn.class_names], np.int64)
    return lut[syn.labels]


def run_report(synthetic: str | Path, data: str | None = None, real_fraction: float = 0.01, steps: int = 300, seed: int = 0,
               batch_size: int = 128, test_n: int | None = None, out: str | Path | None = None, progress: bool = False) -> dict:  # fmt: skip
    """Train the three evaluators; returns (and writes, next to an augmentation output by default) the report."""
    from gan_core.datasets import load_dataset
    from gan_core.errors import UserError
    from training.checkpoint import atomic_write_bytes
    from training.evaluation.classifier import train_evaluator

    if not 0 < real_fraction <= 1:
        raise UserError(f"real_fraction: must be in (0, 1], got {real_fraction}")
    if steps < 1 or batch_size < 1:
        raise UserError(f"steps and batch_size: must be >= 1, got {steps} and {batch_size}")
    real, test = load_dataset(data, "train"), load_dataset(data, "test")
    syn = synthetic_dataset(synthetic)
    if syn.image_shape != real.image_shape:
        raise UserError(
            f"{syn.source}: synthetic images are {syn.image_shape} (C, H, W), real ones {real.image_shape}"
        )
    syn_labels = _relabel(syn, real.class_names)
    keep = stratified_subset(real.labels, real_fraction, seed)
    tx, ty = test.images[:test_n], test.labels[:test_n]
    sets = {
        "real_subset": (real.images[keep], real.labels[keep]),
        "real_plus_synthetic": (
            np.concatenate([real.images[keep], syn.images]),
            np.concatenate([real.labels[keep], syn_labels]),
        ),
        "synthetic_only": (syn.images, syn_labels),
    }
    runs = {}
    for name, (x, y) in sets.items():
        epochs = math.ceil(
            steps / math.ceil(len(x) / batch_size)
        )  # the same budget of optimizer steps for each
        _, stats = train_evaluator(
            x, y, tx, ty, real.class_names, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress
        )
        runs[name] = {"train_n": int(len(x)), "epochs": epochs, "steps": epochs * math.ceil(len(x) / batch_size),
                      "accuracy": round(stats["test_accuracy"], 4), "seconds": stats["seconds"]}  # fmt: skip
    report = {
        "runs": runs,
        "test": {"source": test.source, "n": int(len(tx))},
        "real": {"source": real.source, "fraction": real_fraction, "n": int(len(keep)), "seed": seed},
        "synthetic": {
            "source": str(synthetic),
            "n": int(len(syn)),
            "class_counts": np.bincount(syn_labels, minlength=real.num_classes).tolist(),
        },
        "budget": {
            "steps": steps,
            "batch_size": batch_size,
            "network": "training.evaluation.classifier.EvaluatorNet",
        },
    }
    if out is None and (Path(synthetic) / "job.json").is_file():
        out = Path(synthetic) / "report.json"
    if out is not None:
        atomic_write_bytes(Path(out), (json.dumps(report, indent=2) + "\n").encode())
        report["written_to"] = str(out)
    return report


def print_report(report: dict) -> None:
    print(f"{'training data':<22}{'images':>8}{'steps':>7}{'test acc':>10}")
    for name, r in report["runs"].items():
        print(f"{name:<22}{r['train_n']:>8}{r['steps']:>7}{r['accuracy']:>10.4f}")
    print(
        f"test: {report['test']['n']} real images; real subset {report['real']['fraction']:.2%} of the training split (seed {report['real']['seed']})"
    )
    if "written_to" in report:
        print(f"wrote {report['written_to']}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "synthetic", help="augmentation output folder (or any dataset path) holding the synthetic images"
    )
    p.add_argument("--data", help="real dataset with train and test splits (default: MNIST)")
    p.add_argument(
        "--real-fraction",
        type=float,
        default=0.01,
        help="stratified share of the real training split (default: %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=300,
        help="optimizer steps per run, the same for all three (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-n", type=int, help="use the first N test images (default: all)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    p.add_argument("--out", help="report JSON (default: SYNTHETIC/report.json for an augmentation output)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from gan_core.errors import UserError

    if args.threads < 1 or (args.test_n is not None and args.test_n < 1):
        raise UserError("--threads and --test-n must be >= 1")
    torch.set_num_threads(args.threads)
    report = run_report(
        args.synthetic,
        args.data,
        args.real_fraction,
        args.steps,
        args.seed,
        args.batch_size,
        args.test_n,
        args.out,
        progress=not args.no_progress,
    )
    print_report(report)
    return 0
