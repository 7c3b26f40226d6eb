"""Generated images -> answers: JSON of base64 PNGs, one grid PNG, or an npz."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gan_core.imaging import grid, png_bytes

if TYPE_CHECKING:
    from service.model_set import Model

ENCODE_INLINE = 8  # up to this many PNGs are encoded on the event loop; more go to a thread


@dataclass
class Reply:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Images:
    """Generated images with what identifies them (seed None for explicit latents)."""

    model: Model
    images: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray
    seed: int | None
    truncation: float | None = None


def grid_image(result: Images) -> np.ndarray:
    """One image: rows per class for a conditional model (in index order), else a near-square grid."""
    images = result.images
    if result.labels is None:
        return grid(images, math.ceil(math.sqrt(len(images))))
    classes = sorted(set(result.labels.tolist()))
    rows = [images[result.labels == c] for c in classes]
    cols = max(len(r) for r in rows)
    blank = np.zeros((cols, *images.shape[1:]), np.uint8)
    cells = np.concatenate([np.concatenate([r, blank[: cols - len(r)]]) for r in rows])
    return grid(cells, cols)


def npz_bytes(result: Images) -> bytes:
    """images uint8 [N,H,W,C], labels int64 [N] (-1 when unconditional), indices int64 [N], seed."""
    buf = io.BytesIO()
    labels = result.labels if result.labels is not None else np.full(len(result.images), -1, np.int64)
    seed = np.int64(-1 if result.seed is None else result.seed)
    np.savez(buf, images=result.images, labels=labels, indices=result.indices, seed=seed)
    return buf.getvalue()


def _png_doc(result: Images) -> bytes:
    doc = {
        "model": result.model.name,
        "seed": result.seed,
        "start_index": int(result.indices[0]),
        "count": len(result.images),
        "truncation": result.truncation,
        "images": [
            {
                "index": int(i),
                "label": None if result.labels is None else int(result.labels[k]),
                "png": base64.b64encode(png_bytes(im)).decode(),
            }
            for k, (i, im) in enumerate(zip(result.indices, result.images, strict=True))
        ],
    }
    return json.dumps(doc).encode()


def grid_png(result: Images) -> bytes:
    return png_bytes(grid_image(result))


FORMATS = {
    "npz": (npz_bytes, "application/octet-stream"),
    "grid": (grid_png, "image/png"),
    "png": (_png_doc, "application/json"),
}


async def encode(result: Images, fmt: str, offload: Callable[..., Awaitable[bytes]] | None = None) -> Reply:
    """The answer's bytes; past ENCODE_INLINE images they are made by `offload(make, result)`
    (service.bulk: another process) or a thread, so the event loop keeps serving small requests."""
    headers = {"X-Model": result.model.name}
    if result.seed is not None:
        headers["X-Seed"] = str(result.seed)
    make, media_type = FORMATS[fmt]
    if len(result.images) <= ENCODE_INLINE:
        body = make(result)
    else:
        body = await (offload(make, result) if offload else asyncio.to_thread(make, result))
    return Reply(body, media_type, headers)
