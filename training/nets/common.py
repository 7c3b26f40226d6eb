"""Pieces shared by the architectures: spectral norm switch, label conditioning heads."""

from __future__ import annotations

import torch
from torch import nn


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a layer in spectral norm (Miyato et al. 2018) when asked."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class Generator(nn.Module):
    """Base: maps (z [N, latent], labels [N] int64 or None) to images in [-1, 1], [N, C, H, W]."""

    def __init__(self, latent_dim: int, num_classes: int, conditional: bool, image_shape: tuple[int, int, int]):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditional = conditional
        self.image_shape = tuple(image_shape)


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
        self.embed = maybe_sn(nn.Embedding(num_classes, feat_dim), sn) if conditional and cond_mode == "projection" else None

    def project(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out
