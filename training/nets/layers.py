"""Layers of the newer GAN architectures: SAGAN's self-attention block and class-conditional BatchNorm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import maybe_sn


class SelfAttention(nn.Module):
    """SAGAN's block (Zhang et al. 2019): x + gate * o(softmax(theta(x)^T phi(x)) g(x)).

    theta / phi are 1x1 convolutions to C/8 channels (query / key), g to C/2 (value), o back to C;
    keys and values are max-pooled 2x2, so each of the H*W queries attends over H*W/4 positions
    (the paper's memory saving). The gate is a learned scalar that starts at 0: the block begins
    as the identity and the network learns how much non-local evidence to mix in.
    """

    def __init__(self, channels: int, sn: bool = True):
        super().__init__()
        inner, values = max(channels // 8, 1), max(channels // 2, 1)
        self.theta = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.phi = maybe_sn(nn.Conv2d(channels, inner, 1, bias=False), sn)
        self.g = maybe_sn(nn.Conv2d(channels, values, 1, bias=False), sn)
        self.o = maybe_sn(nn.Conv2d(values, channels, 1, bias=False), sn)
        self.gate = nn.Parameter(torch.zeros(()))

    def projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query [N, C/8, HW], pooled key [N, C/8, HW/4], pooled value [N, C/2, HW/4]).

        One 1x1 convolution with the three (spectrally normalised) weights stacked and one max-pool
        of keys and values together: the same numbers as three convs and two pools, cheaper on CPU, where
        each small conv's fixed cost dominates (bench_family_steps.py, one thread: a SAGAN step 0.133 ->
        0.111 s at probe 0).
        """
        inner = self.theta.out_channels
        h = F.conv2d(x, torch.cat([self.theta.weight, self.phi.weight, self.g.weight]))
        pooled = F.max_pool2d(h[:, inner:], 2).flatten(2)
        return h[:, :inner].flatten(2), pooled[:, :inner], pooled[:, inner:]

    @staticmethod
    def weights(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """[N, H*W, H*W/4] weights: row q is a distribution over the pooled key positions."""
        query, key, _ = self.projections(x)
        return self.weights(query, key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query, key, value = self.projections(x)
        mixed = torch.bmm(value, self.weights(query, key).transpose(1, 2)).view(n, -1, h, w)
        return x + self.gate * self.o(mixed)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel gain and bias are linear functions of a condition vector.

    out = BN(x) * (1 + W_gain c) + W_bias c (de Vries et al. 2017, as SAGAN and BigGAN use it): with
    c a class embedding (and in BigGAN a latent chunk) the normalisation itself carries the class.
    The gain is 1 + ..., so a zero condition is plain BatchNorm.
    """

    def __init__(self, channels: int, cond_dim: int, sn: bool = False):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = maybe_sn(nn.Linear(cond_dim, channels, bias=False), sn)
        self.bias = maybe_sn(nn.Linear(cond_dim, channels, bias=False), sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = 1.0 + self.gain(cond)[:, :, None, None]
        return self.bn(x) * gain + self.bias(cond)[:, :, None, None]


PLANS = {
    28: (7, 2),
    32: (8, 2),
    64: (8, 3),
}  # image side -> (base side, 2x stages): 7-14-28, 8-16-32, 8-16-32-64


def image_plan(image_shape) -> tuple[int, int]:
    """(base side s, number of 2x up/down stages) of a square 28, 32 or 64 px image; the attention stage is at 2s."""
    _, h, w = image_shape
    if h != w or h not in PLANS:
        raise ValueError(f"supports 28x28, 32x32 and 64x64 images, got {h}x{w}")
    return PLANS[h]
