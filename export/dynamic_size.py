"""Fully convolutional image models (card.repair.any_size): height and width stay dynamic in the graph.

Restoration and super-resolution generators have no layer tied to the training size, so one export
serves images of any size whose sides are multiples of `repair.multiple` (the U-Net's downsamplings).
torch.export gets each side as `multiple` x a symbolic dim (its divisibility is a guard, so it must be
declared), the mask input shares the image's dims, and parity is checked at the training size and at
two others (taller and wider, not square), so a graph that baked in a size fails here.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch

from export.verify import Parity, measure_parity
from gan_core.card import InputSpec, ModelCard

MAX_SIDE_BLOCKS = 4096  # the symbolic dims' upper bound (torch.export needs one above the example)


def is_dynamic(card: ModelCard) -> bool:
    return card.repair is not None and card.repair.any_size


def dynamic_shapes(card: ModelCard, batch: torch.export.Dim) -> tuple[dict[int, object], ...]:
    """Per card input: its dynamic axes (batch always; H and W of image inputs of a dynamic-size model)."""
    if not is_dynamic(card):
        return tuple({0: batch} for _ in card.inputs)
    m = card.repair.multiple
    h_, w_ = (
        torch.export.Dim("h_blocks", min=1, max=MAX_SIDE_BLOCKS),
        torch.export.Dim("w_blocks", min=1, max=MAX_SIDE_BLOCKS),
    )
    h, w = (h_, w_) if m == 1 else (m * h_, m * w_)
    return tuple({0: batch, 1: h, 2: w} if i.kind == "image" else {0: batch} for i in card.inputs)


def parity_sizes(card: ModelCard) -> list[tuple[int, int]]:
    """The training size, then one taller and one wider (input pixels), each side a multiple of the model's."""
    h, w = card.input_of_kind("image").shape[:2]
    m = card.repair.multiple
    return [(h, w), (h + 2 * m, w + m), (h + m, 2 * w)]


def sized(card: ModelCard, h: int, w: int) -> ModelCard:
    """The card with every image input at input size h x w (a mask at the output's size)."""
    s = card.repair.scale

    def resize(i: InputSpec) -> InputSpec:
        if i.kind != "image":
            return i
        side = (h, w) if i.name == card.inputs[0].name else (h * s, w * s)
        return i.model_copy(update={"shape": [*side, i.shape[2]]})

    c = card.image_shape[0]
    return card.model_copy(
        update={"inputs": [resize(i) for i in card.inputs], "image_shape": (c, h * s, w * s)}
    )


def size_parity(
    model: onnx.ModelProto, generator: torch.nn.Module, card: ModelCard, threads: int | None = None
) -> tuple[Parity, list[tuple[int, int]]]:
    """The worst parity over the sizes of parity_sizes (batches 1 and 3 each), and those sizes."""
    sizes = parity_sizes(card)
    results = [
        measure_parity(model, generator, sized(card, h, w), batches=(1, 3), threads=threads) for h, w in sizes
    ]
    worst = max(results, key=lambda p: (p.max_abs_diff, p.float_max_abs_diff))
    mean = float(np.mean([p.mean_abs_diff for p in results]))
    floats = max(p.float_max_abs_diff for p in results)
    return Parity(worst.max_abs_diff, floats, worst.batches, mean), sizes
