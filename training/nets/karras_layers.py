"""Layers of the Karras-style networks (PGGAN, StyleGAN): equalised learning rate, pixel norm,
minibatch standard deviation, resampling, channel widths and the shared discriminator head.

Equalised learning rate (Karras et al. 2018): weights are stored as N(0, 1) and scaled by He's
constant 1/sqrt(fan_in) at every forward pass, so Adam's per-parameter step sizes act alike on
every layer whatever its fan-in. `lr_mul` slows a layer down further (StyleGAN's mapping: 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)  # keeps activations' magnitude through leaky ReLU 0.2 (He et al.)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


class EqualLinear(nn.Module):
    """Fully connected layer with runtime weight scaling; `act` adds leaky ReLU 0.2 with gain sqrt(2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        act: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Same-padded square convolution with runtime weight scaling; optional leaky ReLU (gain sqrt(2))."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, act: bool = False
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return lrelu(x) if self.act else x


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each position's feature vector to unit mean square (PGGAN's pixelwise normalisation)."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def upsample2x(x: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling, run as a depthwise stride-2 convolution (~4x faster than avg_pool2d on
    CPU, channels-last, forward + backward)."""
    c = x.shape[1]
    return F.conv2d(x, x.new_full((c, 1, 2, 2), 0.25), stride=2, groups=c)


class Downsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return downsample2x(x)


class MinibatchStddev(nn.Module):
    """Karras et al. 2018: append the feature std over groups of `group` samples as one more channel.

    Groups are consecutive samples (as training.nets.common.MinibatchStd), so a batch made of
    [real; fake] halves never mixes the two; a batch not divisible by `group` uses gcd(group, N).
    Written with mean / square so it stays fast on channels-last tensors (torch's var is slow there).
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(self.group, n)
        y = x.float().reshape(n // g, g, c, h, w)
        y = (y - y.mean(1, keepdim=True)).square().mean(1).add(1e-8).sqrt().mean((1, 2, 3))  # [n / g]
        y = y.to(x.dtype).repeat_interleave(g)[:, None, None, None].expand(n, 1, h, w)
        return torch.cat([x, y], 1)


def channels(res: list[int], width: int, max_width: int) -> dict[int, int]:
    """Channels per resolution: `width` at the finest, doubling per halving, at most `max_width`."""
    return {r: min(width * (res[-1] // r), max_width) for r in res}


class DiscriminatorEpilogue(nn.Module):
    """Base-resolution features -> minibatch std -> 3x3 conv -> FC -> logit [N].

    Conditional: the last FC gives `channels` features whose dot product with a learned class
    embedding, / sqrt(channels), is the logit (the projection head of StyleGAN2-ADA).
    """

    def __init__(self, channels: int, res: int, num_classes: int, conditional: bool, mbstd_group: int = 4):
        super().__init__()
        self.mbstd = MinibatchStddev(mbstd_group)
        self.conv = EqualConv2d(channels + 1, channels, 3, act=True)
        self.fc = EqualLinear(channels * res * res, channels, act=True)
        self.out = EqualLinear(channels, channels if conditional else 1)
        self.embed = nn.Parameter(torch.randn(num_classes, channels)) if conditional else None

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """The FC layer's output [N, channels]: what the logit (and a class head, if any) reads."""
        return self.fc(self.conv(self.mbstd(h)).flatten(1))

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.features(h), labels)

    def head(self, features: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.out(features)
        if self.embed is None:
            return out.squeeze(1)
        return (out * self.embed[labels]).sum(1) / math.sqrt(out.shape[1])
