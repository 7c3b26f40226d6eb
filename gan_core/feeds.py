"""The one seeded feed builder: (card inputs, seed, image indices, user values) -> the model's feeds.

Every consumer builds its ONNX / torch inputs here: export parity, int8 calibration, evaluation,
the service and the augmentation job. Image i of seed s depends on (s, i) and the values asked for,
never on the count, the batch or its neighbours, because each seeded input of image i is drawn
from its own generator: the first latent from `default_rng([s, i])` (gan_core.latents, the stream
the bundled model was published with) and every other seeded input from `default_rng([s, i, tag])`,
tag = crc32 of the input's name.

User values (per input name) are one value for every image or a list of one value per image,
checked against the card (dtype, choices, range, shape); a bad value raises FeedError naming the
input and the limit.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gan_core.card import InputSpec, ModelCard
from gan_core.errors import UserError
from gan_core.latents import balanced_labels, latents

NOISE_MODES = ("seeded", "const", "none")
CONST_NOISE_SEED = 0  # noise_mode 'const': every image gets the noise maps of (seed 0, index 0)


class FeedError(UserError):
    """A user value that does not fit the model's input; names the input and the limit."""


def stream_tag(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(seed: int, index: int, spec: InputSpec, first_latent: bool) -> np.random.Generator:
    return np.random.default_rng([seed, index] if first_latent else [seed, index, stream_tag(spec.name)])


def _per_image(spec: InputSpec, value: Any, n: int, where: str) -> np.ndarray:
    """A value for every image (scalar or length-n list) as an array [n, *shape] of the input's dtype."""
    arr = np.asarray(value)
    shape = tuple(spec.shape)
    if arr.shape == shape:
        arr = np.broadcast_to(arr, (n, *shape))
    elif arr.shape != (n, *shape):
        want = (
            f"one value or a list of {n}"
            if not shape
            else f"shape {list(shape)} or [{n}, {', '.join(map(str, shape))}]"
        )
        raise FeedError(f"{where}: expected {want}, got shape {list(arr.shape)}")
    if spec.dtype == "int64":
        if arr.dtype.kind == "b" or (arr.dtype.kind not in "iu" and not _whole(arr)):
            raise FeedError(f"{where}: must be whole numbers, got {value!r:.80}")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if spec.dtype == "uint8":
        if arr.dtype != np.uint8:
            raise FeedError(f"{where}: must be uint8 pixels, got {arr.dtype}")
        return np.ascontiguousarray(arr)
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise FeedError(f"{where}: must be numbers, got {value!r:.80}")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise FeedError(f"{where}: values must be finite float32 numbers")
    return out


def _whole(arr: np.ndarray) -> bool:
    return arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr)))


def _check(spec: InputSpec, arr: np.ndarray, card: ModelCard, where: str) -> None:
    if spec.kind == "class" and arr.size and not (0 <= arr.min() and arr.max() < card.num_classes):
        bad = int(arr[(arr < 0) | (arr >= card.num_classes)][0])
        raise FeedError(f"{where}: class {bad} is not in 0..{card.num_classes - 1} (model {card.name!r})")
    if spec.kind == "categorical" and arr.size and not (0 <= arr.min() and arr.max() < spec.num_choices):
        raise FeedError(f"{where}: must be in 0..{spec.num_choices - 1} ({spec.num_choices} choices)")
    if spec.range is not None and arr.size:
        lo, hi = spec.range
        if arr.min() < lo or arr.max() > hi:
            raise FeedError(
                f"{where}: must be in [{lo:g}, {hi:g}], got {float(arr.min() if arr.min() < lo else arr.max()):g}"
            )


def _draw(spec: InputSpec, seed: int, indices: Sequence[int], first_latent: bool, truncation: float | None):
    if spec.kind == "latent" and first_latent:
        return latents(seed, indices, spec.shape[0], truncation)
    out = np.empty((len(indices), *spec.shape), np.int64 if spec.dtype == "int64" else np.float32)
    for k, i in enumerate(indices):
        rng = _rng(seed, i, spec, first_latent)
        if spec.kind == "categorical":
            out[k] = rng.integers(0, spec.num_choices)
        elif spec.kind == "continuous" and spec.distribution != "normal":
            out[k] = rng.uniform(*spec.range)
        else:  # latent, noise, normal continuous
            z = rng.standard_normal(tuple(spec.shape) or None, dtype=np.float32)
            if spec.kind == "latent" and truncation is not None:
                bad = np.abs(z) > truncation
                while bad.any():
                    z[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
                    bad = np.abs(z) > truncation
            out[k] = z
    return out


def build_feeds(
    card: ModelCard,
    seed: int,
    indices: Sequence[int] | range,
    values: Mapping[str, Any] | None = None,
    *,
    truncation: float | None = None,
    noise_mode: str = "seeded",
) -> dict[str, np.ndarray]:
    """Feeds {input name: array [N, *shape]} for images `indices` of `seed`.

    values: per input name, one value for all images or one per image. Inputs without a value:
    latent / categorical / continuous / noise are drawn from the seed (latents with the
    truncation trick when `truncation` is set: entries beyond it are redrawn), class labels are
    balanced (i % num_classes), scalars take their default; image inputs must be given.
    noise_mode: 'seeded' (from the seed), 'const' (the same maps for every image) or 'none' (zeros).
    """
    values = dict(values or {})
    unknown = sorted(set(values) - {i.name for i in card.inputs})
    if unknown:
        known = ", ".join(i.name for i in card.inputs)
        raise FeedError(f"{unknown[0]}: model {card.name!r} has no such input (inputs: {known})")
    if noise_mode not in NOISE_MODES:
        raise FeedError(f"noise_mode: must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
    if truncation is not None and not (math.isfinite(truncation) and truncation > 0):
        raise FeedError(f"truncation: must be a finite number > 0, got {truncation}")
    n = len(indices)
    feeds: dict[str, np.ndarray] = {}
    first_latent = next((i.name for i in card.inputs if i.kind == "latent"), None)
    for spec in card.inputs:
        if spec.name in values and values[spec.name] is not None:
            arr = _per_image(spec, values[spec.name], n, spec.name)
            _check(spec, arr, card, spec.name)
        elif spec.kind == "class":
            arr = balanced_labels(indices, card.num_classes)
        elif spec.kind == "scalar":
            arr = np.full(n, spec.default, np.float32)
        elif spec.kind == "image":
            raise FeedError(
                f"{spec.name}: model {card.name!r} needs input images (uint8 {spec.shape}); none given"
            )
        elif spec.kind == "noise" and noise_mode != "seeded":
            arr = np.zeros((n, *spec.shape), np.float32)
            if noise_mode == "const":
                arr[:] = _draw(spec, CONST_NOISE_SEED, [0], False, None)[0]
        else:
            arr = _draw(spec, seed, indices, spec.name == first_latent, truncation)
        feeds[spec.name] = arr
    return feeds


def concat_feeds(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Row-wise concatenation of feeds with the same keys (for batching requests together)."""
    if len(parts) == 1:
        return dict(parts[0])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def slice_feeds(feeds: Mapping[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    return {k: v[a:b] for k, v in feeds.items()}


def feeds_len(feeds: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(feeds.values())))
