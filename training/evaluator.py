"""The evaluator: a small digit classifier whose penultimate layer is the feature space for metrics.

Generated images are measured in the features of one fixed, shipped network (an FID-style
"Inception" for 28x28 digits). Its card names an evaluator id; numbers from different evaluators
are not comparable, so every report carries that id. Weights are safetensors, checked against
the sha256 in the card when loaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import load_file, save
from torch import nn

from gan_core.errors import UserError
from training.checkpoint import atomic_write_bytes, sha256_file

EVALUATOR_DIR = Path(__file__).resolve().parent / "evaluators"
DEFAULT_EVALUATOR = "mnist"


class EvaluationError(UserError):
    """A missing or damaged evaluator, target or data it cannot measure; one line for the user."""


class EvaluatorCard(BaseModel):
    """What the evaluator is, how it was trained and how good it is."""

    model_config = ConfigDict(extra="forbid")

    id: str
    architecture: str
    arch_params: dict[str, Any]
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    feature_dim: int
    parameters: int
    test_accuracy: float
    test_n: int
    training: dict[str, Any]
    weights_file: str
    weights_sha256: str


class EvaluatorNet(nn.Module):
    """Two conv blocks (conv-BN-ReLU-maxpool) -> `feature_dim` ReLU features -> class logits."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        feature_dim: int = 128,
        size: int = 28,
    ):
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(2 * width * (size // 4) ** 2, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(self.blocks(x))
        return f, self.classifier(self.dropout(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_both(x)[1]


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [-1, 1], the scale the GANs generate in."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)


@dataclass
class Evaluator:
    """A loaded evaluator: the network in eval mode plus its card."""

    net: EvaluatorNet
    card: EvaluatorCard

    @property
    def id(self) -> str:
        return self.card.id

    def check_images(self, images: np.ndarray, what: str) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise EvaluationError(
                f"{what}: images must be uint8 [N, C, H, W], got {images.dtype} {images.shape}"
            )
        if tuple(images.shape[1:]) != tuple(self.card.image_shape):
            raise EvaluationError(
                f"{what}: image shape {tuple(images.shape[1:])} (C, H, W) does not match evaluator "
                f"{self.id!r}, which measures {tuple(self.card.image_shape)}"
            )

    @torch.no_grad()
    def features_and_logits(
        self, images: np.ndarray, batch_size: int = 1000
    ) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [N, C, H, W] -> (features float32 [N, feature_dim], logits float32 [N, classes])."""
        self.check_images(images, "evaluator input")
        feats, logits = [], []
        for i in range(0, len(images), batch_size):
            f, lg = self.net.forward_both(to_input(images[i : i + batch_size]))
            feats.append(f.numpy())
            logits.append(lg.numpy())
        return np.concatenate(feats), np.concatenate(logits)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        _, logits = self.features_and_logits(images)
        return float((logits.argmax(1) == labels).mean())


_LOADED: dict[str, Evaluator] = {}


def evaluator_paths(name_or_path: str | Path) -> tuple[Path, Path]:
    """'mnist' -> the shipped files; a path 'dir/x' (with or without suffix) -> dir/x.safetensors + dir/x.json."""
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    if len(p.parts) == 1 and not p.with_suffix(".json").exists():
        p = EVALUATOR_DIR / p
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def load_evaluator(name_or_path: str | Path = DEFAULT_EVALUATOR) -> Evaluator:
    """Load (once per process) and verify an evaluator by shipped name or path."""
    weights, card_path = evaluator_paths(name_or_path)
    key = str(weights.resolve())
    if key in _LOADED:
        return _LOADED[key]
    if not card_path.is_file() or not weights.is_file():
        raise EvaluationError(
            f"{card_path.with_suffix('')}: evaluator not found (needs .safetensors and .json; train one with `gan train-evaluator`)"
        )
    try:
        card = EvaluatorCard.model_validate_json(card_path.read_text())
    except ValueError as e:
        raise EvaluationError(f"{card_path}: evaluator card is invalid ({str(e).splitlines()[0]})") from None
    digest = sha256_file(weights)
    if digest != card.weights_sha256:
        raise EvaluationError(
            f"{weights}: weights sha256 {digest[:12]}... does not match the card's {card.weights_sha256[:12]}..."
        )
    net = EvaluatorNet(card.image_shape[0], card.num_classes, size=card.image_shape[1], **card.arch_params)
    net.load_state_dict(load_file(weights))
    ev = Evaluator(net.eval(), card)
    _LOADED[key] = ev
    return ev


def find_evaluator(image_shape, num_classes: int) -> Evaluator | None:
    """The shipped evaluator that measures this kind of data (image shape and class count), if any."""
    for card_path in sorted(EVALUATOR_DIR.glob("*.json")):
        try:
            ev = load_evaluator(card_path)
        except EvaluationError:
            continue
        if tuple(ev.card.image_shape) == tuple(image_shape) and ev.card.num_classes == num_classes:
            return ev
    return None


def train_evaluator(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    class_names: list[str],
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    width: int = 32,
    feature_dim: int = 128,
    progress: bool = False,
) -> tuple[EvaluatorNet, dict[str, Any]]:
    """Train the evaluator architecture (Adam, one-cycle LR, no augmentation); returns (net, stats).

    Also used by the Classification Accuracy Score, which trains it on generated images.
    """
    torch.manual_seed(seed)
    c, h, w = train_images.shape[1:]
    net = EvaluatorNet(c, len(class_names), width, feature_dim, size=h)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = max(1, -(-len(train_images) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    x_all, y_all = to_input(train_images), torch.from_numpy(np.asarray(train_labels, np.int64))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc="evaluator", unit="batch", mininterval=1.0)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x_all), generator=gen)
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            loss = loss_fn(net(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    net.eval()
    ev = Evaluator(net, _draft_card(net, (c, h, w), class_names, width, feature_dim))
    acc = ev.accuracy(test_images, np.asarray(test_labels))
    stats = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "optimizer": "adam + one-cycle",
             "augmentation": "none", "train_n": len(train_images), "seconds": round(time.perf_counter() - t0, 1),
             "test_accuracy": acc, "test_n": len(test_images)}  # fmt: skip
    return net, stats


def _draft_card(net: EvaluatorNet, shape, class_names, width, feature_dim, **kw) -> EvaluatorCard:
    fields = dict(
        id="draft", architecture="EvaluatorNet: 2x(conv3x3-BN-ReLU-maxpool) -> linear-ReLU features -> linear",
        arch_params={"width": width, "feature_dim": feature_dim}, image_shape=tuple(shape),
        num_classes=len(class_names), class_names=list(class_names), feature_dim=feature_dim,
        parameters=sum(p.numel() for p in net.parameters()), test_accuracy=0.0, test_n=0, training={},
        weights_file="", weights_sha256="",
    )  # fmt: skip
    fields.update(kw)
    return EvaluatorCard(**fields)


def save_evaluator(
    net: EvaluatorNet,
    stats: dict[str, Any],
    out: Path,
    evaluator_id: str,
    class_names,
    shape,
    training: dict[str, Any],
) -> EvaluatorCard:
    """Write out.safetensors then out.json (both temp file + rename); the card holds the weights' sha256."""
    out = Path(out)
    weights = out.with_suffix(".safetensors")
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(weights, save(state, metadata={"evaluator_id": evaluator_id}))
    card = _draft_card(
        net, shape, class_names, net.blocks[0].out_channels, net.classifier.in_features, id=evaluator_id, test_accuracy=stats["test_accuracy"], test_n=stats["test_n"],
        training={**stats, **training}, weights_file=weights.name, weights_sha256=sha256_file(weights),
    )  # fmt: skip
    atomic_write_bytes(
        out.with_suffix(".json"), (json.dumps(card.model_dump(mode="json"), indent=2) + "\n").encode()
    )
    for path in (weights, out.with_suffix(".json")):
        path.chmod(0o644)  # shipped as package data: readable by all (temp files are created 0600)
    _LOADED.pop(str(weights.resolve()), None)
    return card
