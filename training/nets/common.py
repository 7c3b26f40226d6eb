"""Pieces shared by the architectures: spectral norm switch, label conditioning heads."""

from __future__ import annotations

import math

import torch
from torch import nn


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a layer in spectral norm (Miyato et al. 2018) when asked."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class SumPool(nn.Module):
    """Global sum pooling of a [N, C, H, W] map to [N, C] (SNGAN's and BigGAN's D heads)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.sum((2, 3))


def hidden_layer(in_dim: int, hidden: int, sn: bool) -> list[nn.Module]:
    """D's optional fully connected layer (`d_hidden`) between its flattened trunk and its head, so D
    scores the whole map nonlinearly instead of with one hyperplane; [] when `hidden` is 0."""
    return [maybe_sn(nn.Linear(in_dim, hidden), sn), nn.LeakyReLU(0.2)] if hidden else []


class Generator(nn.Module):
    """Base: maps (z [N, latent], labels [N] int64 or None) to images in [-1, 1], [N, C, H, W]."""

    def __init__(
        self, latent_dim: int, num_classes: int, conditional: bool, image_shape: tuple[int, int, int]
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditional = conditional
        self.image_shape = tuple(image_shape)


class MinibatchStd(nn.Module):
    """Karras et al. 2018: append the mean feature std over groups of `group` consecutive samples.

    Gives D a direct view of sample diversity, the cheapest cure for a generator that ignores z.
    Groups are consecutive, so a batch made of [real; fake] halves never mixes the two.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, c, H, W = h.shape
        g = math.gcd(self.group, n)
        std = h.view(n // g, g, c, H, W).float().var(1, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
        return torch.cat([h, std.to(h.dtype).repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, H, W)], 1)


class GroupBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics come from each run of `group` consecutive samples apart.

    Radford et al. fed D its real and its fake batches separately: one BatchNorm over a [real; fake]
    batch would let D tell the halves apart by their shared statistics. With `group` = the batch size,
    every D call here (a [real; fake] batch, G's fakes, the penalty's interpolates) normalises the real
    and the fake samples apart. Evaluation uses the running statistics, as BatchNorm does.
    """

    def __init__(self, channels: int, group: int):
        super().__init__(channels)
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] <= self.group:
            return super().forward(x)
        return torch.cat([super(GroupBatchNorm2d, self).forward(c) for c in x.split(self.group)])


class Discriminator(nn.Module):
    """Base: maps (images [N, C, H, W] in [-1, 1], labels or None) to logits [N].

    `cond_mode` picks how labels enter: 'concat' (labels as extra input features) or
    'projection' (Miyato & Koyama 2018: logit += <embed(y), features>).
    """

    def __init__(self, num_classes: int, conditional: bool, cond_mode: str, feat_dim: int, sn: bool):
        super().__init__()
        if cond_mode not in ("concat", "projection"):
            raise ValueError(f"cond_mode must be 'concat' or 'projection', got {cond_mode!r}")
        self.conditional = conditional
        self.cond_mode = cond_mode
        self.num_classes = num_classes
        self.head = maybe_sn(nn.Linear(feat_dim, 1), sn)
        self.embed = None
        if conditional and cond_mode == "projection":
            emb = nn.Embedding(num_classes, feat_dim)
            # Default N(0, 1) rows times thousands of features would swamp the unconditional logit at start.
            nn.init.normal_(emb.weight, std=0.02)
            self.embed = maybe_sn(emb, sn)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's features [N, feat_dim] of images, without labels (a second head reads them)."""
        return self.net(x)

    def project(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out
