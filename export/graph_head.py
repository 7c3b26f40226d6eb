"""The torch module that is exported: generator + the in-graph pixel quantization of the ONNX contract.

The service and the augmentation job never see floats: the graph returns uint8 NHWC pixels
round((x + 1) * 127.5) clipped to [0, 255] (round half to even, like numpy's rint and ONNX Round).
The [-1, 1] tensor is returned too, so the verifier can check float parity on the very same graph;
the exporter drops that output from the file it writes.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGES = "images"
FLOAT_OUTPUT = "pixels_float"  # verification-only output, removed before writing


def to_uint8_nhwc(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float [N, C, H, W] -> uint8 [N, H, W, C], as gan_core.imaging.float_to_uint8 does in numpy."""
    return torch.clamp(torch.round((x + 1.0) * 127.5), 0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class ImagesHead(nn.Module):
    """(the card's inputs, in order) -> (uint8 images NHWC, float images NCHW) for a generator in eval mode."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.generator(*inputs)
        return to_uint8_nhwc(x), x
