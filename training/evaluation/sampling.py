"""What gets measured: samples of a generator (checkpoint, run folder, .onnx) or of an image set.

Generators are sampled on the service's feeds (gan_core.feeds: image i of seed s from its own
generator seeded [s, i]; balanced labels i % classes for conditional models), so a checkpoint and
its ONNX export are measured on the same inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gan_core.card import ModelCard
from gan_core.feeds import build_feeds
from gan_core.latents import balanced_labels
from training.checkpoint import list_checkpoints
from training.evaluation.classifier import EvaluationError


@dataclass
class Samples:
    """Images to measure (uint8 [N, C, H, W]), the labels asked for or known, and where they came from."""

    images: np.ndarray
    labels: np.ndarray | None
    kind: str  # checkpoint | onnx | npz | dataset
    path: Path
    card: Any = None  # gan_core.card.ModelCard for generators
    codes: dict[str, np.ndarray] | None = None  # values of a generator's categorical inputs, per image

    @property
    def conditional(self) -> bool:
        return self.card is not None and self.card.conditional


def subset_indices(total: int, n: int, seed: int) -> np.ndarray:
    """A seeded, sorted subset of n of `total` indices (all of them when n >= total)."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, total]).choice(total, n, replace=False))


def target_kind(target: str | os.PathLike) -> str:
    p = Path(target)
    if not p.exists():
        raise EvaluationError(f"{p}: no such file or folder")
    if p.is_dir():
        return "checkpoint" if list_checkpoints(p) else "dataset"
    kinds = {".onnx": "onnx", ".safetensors": "checkpoint", ".npz": "npz"}
    if p.suffix not in kinds:
        raise EvaluationError(
            f"{p}: unsupported target (give a checkpoint, run folder, .onnx, .npz or image folder)"
        )
    return kinds[p.suffix]


def generate_batches(
    run, card: ModelCard, n: int, seed: int, batch: int = 500
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Images 0..n-1 of `seed` through run(feeds) -> uint8 [N, C, H, W], with the labels they were
    given and the values their categorical codes were drawn with."""
    out, codes = [], {i.name: [] for i in card.inputs if i.kind == "categorical"}
    for i in range(0, n, batch):
        feeds = build_feeds(card, seed, range(i, min(n, i + batch)))
        for name, parts in codes.items():
            parts.append(feeds[name])
        out.append(run(feeds))
    labels = balanced_labels(range(n), card.num_classes) if card.conditional else None
    return np.concatenate(out), labels, {k: np.concatenate(v) for k, v in codes.items()}


def torch_sampler(g, card: ModelCard, device=None):
    """run(feeds) -> uint8 [N, C, H, W] for a torch generator in eval mode taking the card's inputs."""
    import torch

    from gan_core.imaging import float_to_uint8

    device = device or next(g.parameters()).device

    @torch.no_grad()
    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        args = [torch.from_numpy(feeds[i.name]).to(device) for i in card.inputs]
        return float_to_uint8(g(*args).float().cpu().numpy()).transpose(0, 3, 1, 2)

    return run


def sample_generator(
    g, card: ModelCard, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """n images of a torch generator on the service's feeds (balanced labels when conditional),
    their labels and their categorical code values."""
    return generate_batches(torch_sampler(g, card), card, n, seed)


def refuse_translation(card: ModelCard, path: Path) -> None:
    if card.input_of_kind("image") is not None:
        raise EvaluationError(
            f"{path}: {card.name!r} translates images; measure it with `gan evaluate-translation`"
        )


def open_onnx(path: Path):
    """An exported model's ORT session on the CPU (GAN_ORT_THREADS threads); a bad file is one EvaluationError."""
    from gan_core.runtime import ModelFileError, open_generator

    try:
        return open_generator(path, threads=int(os.environ.get("GAN_ORT_THREADS", 0)) or None, device="cpu")
    except ModelFileError as e:
        raise EvaluationError(str(e)) from None


def sample_target(target: str | os.PathLike, n: int = 10_000, seed: int = 0, split: str = "train") -> Samples:
    """Images of any evaluation target (see module doc); data targets give a seeded subset of n."""
    p = Path(target)
    kind = target_kind(p)
    if n < 1:
        raise EvaluationError(f"n must be >= 1, got {n}")
    if kind == "checkpoint":
        from training.checkpoint import build_generator, load_checkpoint

        ckpt = load_checkpoint(p)
        refuse_translation(ckpt.card, p)
        images, labels, codes = sample_generator(build_generator(ckpt, "g_ema"), ckpt.card, n, seed)
        return Samples(images, labels, kind, ckpt.path, ckpt.card, codes)
    if kind == "onnx":
        sess = open_onnx(p)
        card = sess.card
        refuse_translation(card, p)
        run = lambda feeds: sess.run(feeds).transpose(0, 3, 1, 2)  # noqa: E731
        images, labels, codes = generate_batches(run, card, n, seed)
        return Samples(np.ascontiguousarray(images), labels, kind, p, card, codes)
    from gan_core.datasets import load_dataset

    ds = load_dataset(p, split)
    idx = subset_indices(len(ds), n, seed)
    return Samples(ds.images[idx], ds.labels[idx] if ds.labelled else None, kind, p)
