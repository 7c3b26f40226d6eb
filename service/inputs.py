"""Request fields -> the model's feeds, checked against its card; client mistakes -> ClientError.

Class labels may be given by index or by name; every other declared input (InfoGAN codes,
scalars such as truncation_psi) comes in `codes`, one value or one per image. gan_core.feeds does
the rest (seeded draws, ranges, shapes), and its FeedError becomes a 400 naming the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gan_core.feeds import FeedError, build_feeds
from gan_core.latents import balanced_labels

if TYPE_CHECKING:
    from service.model_set import Model


class ClientError(Exception):
    """A request the service refuses: HTTP `status` (+ headers) with a one-line message naming the
    field and the limit (4xx for client mistakes, 503/504 when the service is too busy)."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def class_index(model: Model, value, where: str) -> int:
    card = model.card
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        if not 0 <= value < card.num_classes:
            raise ClientError(
                f"{where}: class {value} is not in 0..{card.num_classes - 1} (model {model.name!r})"
            )
        return value
    if value in card.class_names:
        return card.class_names.index(value)
    raise ClientError(
        f"{where}: unknown class {value!r}; model {model.name!r} has {', '.join(card.class_names)}"
    )


def labels_for(model: Model, spec, indices: np.ndarray, where: str = "labels") -> np.ndarray | None:
    """int64 [N] classes for a conditional model (default balanced); None for an unconditional one."""
    card = model.card
    if not card.conditional:
        if spec is not None:
            raise ClientError(f"{where}: model {model.name!r} is unconditional; omit {where}")
        return None
    if spec is None or spec == "balanced":
        return balanced_labels(indices, card.num_classes)
    if isinstance(spec, list):
        if len(spec) != len(indices):
            raise ClientError(
                f"{where}: list has {len(spec)} entries, expected {len(indices)} (one per image)"
            )
        return np.array([class_index(model, v, f"{where}[{k}]") for k, v in enumerate(spec)], np.int64)
    return np.full(len(indices), class_index(model, spec, where), np.int64)


def latent_matrix(model: Model, rows: list[list[float]], where: str) -> np.ndarray:
    dim = model.card.latent_dim
    for k, row in enumerate(rows):
        if len(row) != dim:
            raise ClientError(
                f"{where}[{k}]: has {len(row)} values; model {model.name!r} expects {dim} (latent_dim)"
            )
    with np.errstate(over="ignore"):
        z = np.asarray(rows, np.float32)
    if not np.isfinite(z).all():  # finite doubles can still overflow float32
        raise ClientError(f"{where}: values must be finite float32 numbers")
    return z


CODE_KINDS = ("categorical", "continuous", "scalar")


def code_values(model: Model, codes: dict[str, Any] | None) -> dict[str, Any]:
    """`codes` of a request: only the card's categorical / continuous / scalar inputs may be set."""
    if codes is not None and not isinstance(codes, dict):  # the typed Codes model of service.schemas
        codes = codes.model_dump(exclude_none=True)
    if not codes:
        return {}
    allowed = {i.name for i in model.card.inputs if i.kind in CODE_KINDS}
    for name in codes:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ClientError(f"codes.{name}: model {model.name!r} has no such code (codes: {known})")
    return dict(codes)


def feeds_for(
    model: Model,
    seed: int,
    indices: np.ndarray | range,
    labels: np.ndarray | None,
    codes: dict[str, Any] | None = None,
    truncation: float | None = None,
    latents: np.ndarray | None = None,
    noise_mode: str = "seeded",
) -> dict[str, np.ndarray]:
    """The model's feeds for these images; explicit `latents` replace the first latent input."""
    card = model.card
    values = code_values(model, codes)
    if labels is not None:
        values[card.input_of_kind("class").name] = labels
    if latents is not None:
        values[card.input_of_kind("latent").name] = latents
    try:
        return build_feeds(card, seed, indices, values, truncation=truncation, noise_mode=noise_mode)
    except FeedError as e:
        msg = str(e)
        code_names = {i.name for i in card.inputs if i.kind in CODE_KINDS}
        raise ClientError(f"codes.{msg}" if msg.split(":")[0] in code_names else msg) from None
