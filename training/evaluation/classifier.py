"""The evaluator: a small CNN classifier whose penultimate layer is the feature space for metrics.

Generated images are measured in the features of one fixed network trained on the generator's
own dataset (an FID-style "Inception" per dataset; `mnist-cnn-v1` ships for MNIST). Its card names
an evaluator id and the dataset it is bound to (`dataset`: fingerprint, test split, classes);
numbers from different evaluators are not comparable, so every report carries that id. Labelled
data trains it on the classes (task `classes`); unlabelled data on predicting which of four 90
degree rotations an image was given (task `rotation`, Gidaris et al. 2018), a self-supervised
feature space in which FID and precision/recall work but class metrics do not. Weights are
safetensors, checked against the sha256 in the card when loaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save
from torch import nn

from gan_core.errors import UserError
from training.checkpoint import atomic_write_bytes, sha256_file

EVALUATOR_DIR = Path(__file__).resolve().parent / "weights"  # the shipped evaluators
DEFAULT_EVALUATOR = "mnist"
ROTATIONS = ["rot0", "rot90", "rot180", "rot270"]  # the classes of a `rotation` evaluator
CLASS_METRICS = ("classifier_score", "modes", "class_accuracy", "cas")  # what needs a `classes` evaluator


class EvaluationError(UserError):
    """A missing or damaged evaluator, target or data it cannot measure; one line for the user."""


class DataBinding(BaseModel):
    """The dataset an evaluator was trained on; only that data's generators are measured with it by default."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str | None = None
    fingerprint: str = Field(
        description="of the training split as loaded: a generator card's dataset.fingerprint"
    )
    test: dict[str, Any] = Field(
        description='{"kind": "split", "fingerprint"} or {"kind": "holdout", "fraction", "seed", "fingerprint"}'
    )
    classes: list[str]
    labelled: bool = True
    preprocess: dict[str, Any] | None = None


class EvaluatorCard(BaseModel):
    """What the evaluator is, the data it is bound to, how it was trained and how good it is."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: Literal["classes", "rotation"] = "classes"
    dataset: DataBinding | None = None
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

    @model_validator(mode="before")
    @classmethod
    def _bind_older(cls, data: Any) -> Any:
        """Cards written before `dataset` existed: the binding from what `training.data` recorded."""
        if not isinstance(data, dict) or data.get("dataset") is not None:
            return data
        recorded = (data.get("training") or {}).get("data") or {}
        if "fingerprint" not in recorded:
            return data
        source = recorded.get("source")
        binding = {"name": Path(source).name if source else data.get("id", "?"), "source": source,
                   "fingerprint": recorded["fingerprint"], "classes": list(data.get("class_names", [])),
                   "test": {"kind": "split", "fingerprint": recorded.get("test_fingerprint")}}  # fmt: skip
        return {**data, "dataset": binding}


def default_blocks(size: int) -> int:
    """Conv blocks (each halves the map) so that the last map is at most 8 px: 2 for 28/32 px, 3 for 64 px."""
    blocks = 2
    while size // 2**blocks > 8:
        blocks += 1
    return blocks


class EvaluatorNet(nn.Module):
    """`blocks` conv blocks (conv-BN-ReLU-maxpool, width doubling) -> `feature_dim` ReLU features -> logits.

    Two blocks for 28 and 32 px images (the shipped MNIST evaluator), three for 64 px.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        feature_dim: int = 128,
        size: int | tuple[int, int] = 28,
        blocks: int | None = None,
    ):
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        blocks = blocks or default_blocks(max(h, w))
        layers: list[nn.Module] = []
        ch_in, ch = in_channels, width
        for _ in range(blocks):
            layers += [
                nn.Conv2d(ch_in, ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            ch_in, ch = ch, ch * 2
            h, w = h // 2, w // 2
        self.blocks = nn.Sequential(*layers, nn.Flatten())
        self.features = nn.Sequential(nn.Linear(ch_in * h * w, feature_dim), nn.ReLU())
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

    @property
    def measures_classes(self) -> bool:
        """False for a self-supervised (rotation) evaluator: no class metrics in its space."""
        return self.card.task == "classes"

    def check_images(self, images: np.ndarray, what: str) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise EvaluationError(
                f"{what}: images must be uint8 [N, C, H, W], got {images.dtype} {images.shape}"
            )
        if tuple(images.shape[1:]) != tuple(self.card.image_shape):
            raise EvaluationError(
                f"{what}: image shape {tuple(images.shape[1:])} (C, H, W) does not match evaluator "
                f"{self.id!r}, which measures {tuple(self.card.image_shape)} (compare with the images' own "
                "data: --data DIR)"
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
    net = EvaluatorNet(
        card.image_shape[0], card.num_classes, size=tuple(card.image_shape[1:]), **card.arch_params
    )
    net.load_state_dict(load_file(weights))
    ev = Evaluator(net.eval(), card)
    _LOADED[key] = ev
    return ev


def rotated(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each image x[i] rotated by k[i] quarter turns (the `rotation` task's inputs)."""
    out = x.clone()
    for q in range(1, 4):
        sel = k == q
        if sel.any():
            out[sel] = torch.rot90(x[sel], q, (2, 3))
    return out


def rotation_accuracy(net: EvaluatorNet, images: np.ndarray, batch_size: int = 500) -> float:
    """Share of the four rotations of every image that the net tells apart."""
    hits = 0
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = to_input(images[i : i + batch_size])
            for q in range(4):
                hits += int((net(torch.rot90(x, q, (2, 3))).argmax(1) == q).sum())
    return hits / (4 * len(images))


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
    task: str = "classes",
) -> tuple[EvaluatorNet, dict[str, Any]]:
    """Train the evaluator architecture (Adam, one-cycle LR, no augmentation); returns (net, stats).

    task 'classes' learns `train_labels`; 'rotation' ignores the labels and learns which of four
    quarter turns each image was given (square images only), a seeded turn per image and epoch.
    Also used by the Classification Accuracy Score, which trains it on generated images.
    """
    if task not in ("classes", "rotation"):
        raise EvaluationError(f"task: must be classes or rotation, got {task!r}")
    torch.manual_seed(seed)
    c, h, w = train_images.shape[1:]
    if task == "rotation":
        if h != w:
            raise EvaluationError(f"a rotation evaluator needs square images, got {h}x{w}")
        class_names = ROTATIONS
    net = EvaluatorNet(c, len(class_names), width, feature_dim, size=(h, w))
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
        turns = torch.randint(0, 4, (len(x_all),), generator=gen) if task == "rotation" else None
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            if turns is None:
                loss = loss_fn(net(x_all[idx]), y_all[idx])
            else:
                loss = loss_fn(net(rotated(x_all[idx], turns[idx])), turns[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    net.eval()
    if task == "rotation":
        acc = rotation_accuracy(net, test_images)
    else:
        acc = Evaluator(net, _draft_card(net, (c, h, w), class_names, width, feature_dim)).accuracy(
            test_images, np.asarray(test_labels)
        )
    stats = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "optimizer": "adam + one-cycle",
             "augmentation": "none", "train_n": len(train_images), "seconds": round(time.perf_counter() - t0, 1),
             "test_accuracy": acc, "test_n": len(test_images), "task": task}  # fmt: skip
    return net, stats


def _draft_card(net: EvaluatorNet, shape, class_names, width, feature_dim, **kw) -> EvaluatorCard:
    blocks = sum(isinstance(m, nn.Conv2d) for m in net.blocks)
    arch = {"width": width, "feature_dim": feature_dim}
    if blocks != default_blocks(max(shape[1:])):
        arch["blocks"] = blocks
    fields = dict(
        id="draft", architecture=f"EvaluatorNet: {blocks}x(conv3x3-BN-ReLU-maxpool) -> linear-ReLU features -> linear",
        arch_params=arch, image_shape=tuple(shape),
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
    dataset: DataBinding | None = None,
) -> EvaluatorCard:
    """Write out.safetensors then out.json (both temp file + rename); the card holds the weights' sha256."""
    out = Path(out)
    weights = out.with_suffix(".safetensors")
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(weights, save(state, metadata={"evaluator_id": evaluator_id}))
    card = _draft_card(
        net, shape, ROTATIONS if stats.get("task") == "rotation" else class_names, net.blocks[0].out_channels,
        net.classifier.in_features, id=evaluator_id, test_accuracy=stats["test_accuracy"], test_n=stats["test_n"],
        training={**stats, **training}, weights_file=weights.name, weights_sha256=sha256_file(weights),
        task=stats.get("task", "classes"), dataset=dataset,
    )  # fmt: skip
    atomic_write_bytes(
        out.with_suffix(".json"), (json.dumps(card.model_dump(mode="json"), indent=2) + "\n").encode()
    )
    for path in (weights, out.with_suffix(".json")):
        path.chmod(0o644)  # shipped as package data: readable by all (temp files are created 0600)
    _LOADED.pop(str(weights.resolve()), None)
    return card
