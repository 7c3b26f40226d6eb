"""POST /traverse: sweep one code of a model across its range at fixed seeds; a grid comes back.

Row r is image `index` of seed r: its noise, its other codes and (conditional models) its class are
what /generate gives that image, and only the swept code changes from column to column, so a
column is "the same digits with the code at this value". Columns: every value of a categorical
code, `steps` evenly spaced values over a continuous (or ranged scalar) code's range, or explicit
`values`. Limits: columns <= GAN_MAX_STEPS, rows x columns <= GAN_MAX_COUNT, both checked before
anything is built. The images go through
the model's batcher like every other request, and are encoded by service.encoding.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gan_core.card import InputSpec
from gan_core.feeds import concat_feeds
from gan_core.imaging import grid, png_bytes
from service.encoding import ENCODE_INLINE, Reply
from service.inputs import CODE_KINDS, ClientError, feeds_for, labels_for
from service.limits import over_limit
from service.settings import Settings

if TYPE_CHECKING:
    from service.core import ServingCore
    from service.model_set import Model
    from service.schemas import TraverseRequest

DEFAULT_STEPS = 8


@dataclass
class Traversal:
    """images uint8 [rows * columns, H, W, C], row-major: row r = seeds[r], column c = values[c]."""

    model: Model
    code: str
    seeds: list[int]
    values: np.ndarray
    labels: np.ndarray | None  # per image
    images: np.ndarray


def swept_input(model: Model, name: str) -> InputSpec:
    codes = [i for i in model.card.inputs if i.kind in CODE_KINDS]
    for spec in codes:
        if spec.name == name:
            return spec
    known = ", ".join(i.name for i in codes) or "none"
    raise ClientError(f"code: model {model.name!r} has no code {name!r} (codes: {known})")


def column_count(spec: InputSpec, steps: int | None, values: list[float] | None) -> tuple[int, str]:
    """The number of columns and the field that sets it, from the request alone: nothing is built
    before it is checked against GAN_MAX_STEPS."""
    if values is not None:
        if steps is not None:
            raise ClientError("steps: give either steps or values, not both")
        return len(values), "values"
    if spec.kind == "categorical":
        if steps is not None:
            raise ClientError(
                f"steps: code {spec.name!r} is categorical; it takes all its values (or give values)"
            )
        return spec.num_choices, "code"
    if spec.range is None:
        raise ClientError(f"values: code {spec.name!r} declares no range to sweep; give its values")
    return steps or DEFAULT_STEPS, "steps"


def column_values(spec: InputSpec, steps: int | None, values: list[float] | None) -> np.ndarray:
    """The swept code's value per column, checked against the card (after column_count)."""
    if values is not None:
        arr = np.asarray(values, np.float64)
        for j, v in enumerate(arr):
            if spec.kind == "categorical" and (v != round(v) or not 0 <= v < spec.num_choices):
                raise ClientError(
                    f"values[{j}]: must be a whole number in 0..{spec.num_choices - 1}, got {v:g}"
                )
            if spec.range is not None and not spec.range[0] <= v <= spec.range[1]:
                raise ClientError(
                    f"values[{j}]: must be in [{spec.range[0]:g}, {spec.range[1]:g}], got {v:g}"
                )
        return arr.astype(np.int64 if spec.kind == "categorical" else np.float32)
    if spec.kind == "categorical":
        return np.arange(spec.num_choices, dtype=np.int64)
    return np.linspace(spec.range[0], spec.range[1], steps or DEFAULT_STEPS).astype(np.float32)


def fixed_codes(req: TraverseRequest, code: str) -> dict:
    codes = (
        req.codes
        if isinstance(req.codes, dict) or req.codes is None
        else req.codes.model_dump(exclude_none=True)
    )
    codes = dict(codes or {})
    if code in codes:
        raise ClientError(f"codes.{code}: is the swept code; its columns come from steps or values")
    for name, v in codes.items():
        if isinstance(v, list):
            raise ClientError(f"codes.{name}: a traversal takes one value for every image, not a list")
    return codes


def check_size(settings: Settings, rows: int, cols: int, cols_field: str = "values") -> None:
    """Columns <= GAN_MAX_STEPS (named by the field that set them) and rows x columns <= GAN_MAX_COUNT."""
    if cols_field != "code":
        error = over_limit(cols_field, cols, "max_steps", settings)
        if error is not None:
            raise error
    elif cols > settings.max_steps:
        raise ClientError(
            f"code: its {cols} values would be {cols} columns, more than {settings.max_steps} "
            f"({Settings.ENV['max_steps']}); give the values to show"
        )
    if rows * cols > settings.max_count:
        raise ClientError(
            f"seeds: {rows} rows x {cols} columns = {rows * cols} images, must be <= {settings.max_count} "
            f"({Settings.ENV['max_count']})"
        )


def row_labels(model: Model, req: TraverseRequest, rows: int) -> np.ndarray | None:
    """One class per row (the class /generate gives image `index` unless asked otherwise)."""
    if isinstance(req.labels, list) and len(req.labels) != rows:
        raise ClientError(f"labels: list has {len(req.labels)} entries, expected {rows} (one per seed)")
    return labels_for(model, req.labels, np.full(rows, req.index, np.int64))


async def traverse_code(core: ServingCore, req: TraverseRequest) -> Traversal:
    model = core.model(req.model)
    spec = swept_input(model, req.code)
    cols, cols_field = column_count(spec, req.steps, req.values)
    rows = len(req.seeds)
    check_size(core.settings, rows, cols, cols_field)
    values = column_values(spec, req.steps, req.values)
    core.admit(model, rows * cols)
    codes = fixed_codes(req, spec.name)
    labels = row_labels(model, req, rows)

    def feeds():
        parts = []
        for r, seed in enumerate(req.seeds):
            lab = None if labels is None else np.full(cols, labels[r], np.int64)
            parts.append(
                feeds_for(model, seed, [req.index] * cols, lab, {**codes, spec.name: values}, req.truncation)
            )
        return concat_feeds(parts)

    # a few ms of numpy per 256 images: off the event loop for large grids, as /generate does
    big = rows * cols > ENCODE_INLINE
    all_feeds = await asyncio.get_running_loop().run_in_executor(None, feeds) if big else feeds()
    images = await core.run(model, all_feeds)
    per_image = None if labels is None else np.repeat(labels, cols)
    return Traversal(model, spec.name, list(req.seeds), values, per_image, images)


async def encode_traversal(t: Traversal, fmt: str) -> Reply:
    if len(t.images) > ENCODE_INLINE:
        return await asyncio.get_running_loop().run_in_executor(None, traversal_reply, t, fmt)
    return traversal_reply(t, fmt)


def traversal_reply(t: Traversal, fmt: str) -> Reply:
    headers = {"X-Model": t.model.name, "X-Code": t.code}
    if fmt == "npz":
        buf = io.BytesIO()
        labels = t.labels if t.labels is not None else np.full(len(t.images), -1, np.int64)
        np.savez(buf, images=t.images, seeds=np.asarray(t.seeds, np.int64), values=t.values, labels=labels,
                 code=np.asarray(t.code))  # fmt: skip
        return Reply(buf.getvalue(), "application/octet-stream", headers)
    return Reply(png_bytes(grid(t.images, len(t.values))), "image/png", headers)
