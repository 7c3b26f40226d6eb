"""Checks every export must pass before its file is written: onnx.checker, then ORT vs torch parity.

Parity runs the exported graph (with its verification-only float output still attached) and the
torch generator on the same service latents at several batch sizes, including 1 and a batch that
is neither 1 nor the export's example batch, so a graph that baked in a batch size fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.errors import ExportError
from export.graph_head import FLOAT_OUTPUT, IMAGES
from gan_core.card import ModelCard
from gan_core.feeds import build_feeds, stream_tag
from gan_core.imaging import float_to_uint8
from gan_core.runtime import session_options

PARITY_BATCHES = (1, 7, 256)
PARITY_SEED = 4_2024


@dataclass(frozen=True)
class Tolerance:
    """Largest allowed |ORT - torch|: in uint8 levels, and on the [-1, 1] floats (None = not checked)."""

    levels: int
    floats: float | None
    mean_levels: float | None = None


@dataclass(frozen=True)
class Parity:
    max_abs_diff: int
    float_max_abs_diff: float
    batches: tuple[int, ...]
    mean_abs_diff: float  # uint8 levels, over all pixels of all batches


def check_model(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None


def parity_images(card: ModelCard, indices: range) -> dict[str, np.ndarray]:
    """Seeded uint8 noise for each image input (image i from default_rng([seed, i, crc32(name)]))."""
    return {
        spec.name: np.stack(
            [
                np.random.default_rng([PARITY_SEED, i, stream_tag(spec.name)]).integers(
                    0, 256, spec.shape, np.uint8
                )
                for i in indices
            ]
        )
        for spec in card.inputs
        if spec.kind == "image"
    }


def parity_feeds(card: ModelCard, batch: int, offset: int) -> dict[str, np.ndarray]:
    """Feeds of images offset..offset+batch-1 of the parity seed (gan_core.feeds, like every consumer);
    image inputs (translation models) get seeded uint8 noise images."""
    indices = range(offset, offset + batch)
    return build_feeds(card, PARITY_SEED, indices, parity_images(card, indices))


def torch_inputs(card: ModelCard, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
    """The feeds as the generator's positional arguments, in the card's input order."""
    return [torch.from_numpy(feeds[i.name]) for i in card.inputs]


def ort_session(model: onnx.ModelProto | bytes, threads: int | None = None) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    try:
        return ort.InferenceSession(
            data, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # ORT raises its own exception types
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {str(e).splitlines()[0]}") from None


@torch.no_grad()
def measure_parity(
    model: onnx.ModelProto | bytes,
    generator: torch.nn.Module,
    card: ModelCard,
    batches: tuple[int, ...] = PARITY_BATCHES,
    threads: int | None = None,
) -> Parity:
    """Run the two-output graph and the torch generator on the same latents; report the largest gaps."""
    sess = ort_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    if names[:2] != [IMAGES, FLOAT_OUTPUT]:
        raise ExportError(f"exported graph outputs are {names}, expected [{IMAGES!r}, {FLOAT_OUTPUT!r}]")
    worst, worst_f, total, count, offset = 0, 0.0, 0.0, 0, 0
    for b in batches:
        feeds = parity_feeds(card, b, offset)
        offset += b
        images, floats = sess.run([IMAGES, FLOAT_OUTPUT], feeds)
        ref = generator(*torch_inputs(card, feeds)).float().numpy()
        ref_u8 = float_to_uint8(ref)
        if images.dtype != np.uint8 or images.shape != ref_u8.shape:
            raise ExportError(
                f"graph output {IMAGES!r} is {images.dtype} {list(images.shape)} at batch {b}, expected uint8 {list(ref_u8.shape)}"
            )
        d = np.abs(images.astype(np.int16) - ref_u8.astype(np.int16))
        worst, total, count = max(worst, int(d.max())), total + float(d.sum()), count + d.size
        worst_f = max(worst_f, float(np.abs(floats.astype(np.float32) - ref).max()))
    return Parity(worst, worst_f, tuple(batches), total / max(count, 1))


def enforce(parity: Parity, tol: Tolerance, what: str) -> None:
    """Raise ExportError naming the measured gap and the limit when parity is outside `tol`."""
    if parity.max_abs_diff > tol.levels:
        raise ExportError(
            f"{what}: ONNX Runtime output differs from torch by {parity.max_abs_diff} uint8 levels "
            f"(limit {tol.levels}) on batches {list(parity.batches)}"
        )
    if tol.mean_levels is not None and parity.mean_abs_diff > tol.mean_levels:
        raise ExportError(
            f"{what}: ONNX Runtime output differs from torch by {parity.mean_abs_diff:.2f} uint8 levels on "
            f"average (limit {tol.mean_levels:g}) on batches {list(parity.batches)}"
        )
    if tol.floats is not None and parity.float_max_abs_diff > tol.floats:
        raise ExportError(
            f"{what}: ONNX Runtime float output differs from torch by {parity.float_max_abs_diff:.3g} "
            f"(limit {tol.floats:g}) on batches {list(parity.batches)}"
        )
