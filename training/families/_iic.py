"""Invariant Information Clustering (Ji et al. 2019): how InfoGAN's clusterer learns the reals' clusters.

Not a family (the leading underscore keeps training.registry from importing it as one). IIC asks a
K-way head to give an image and a perturbed copy of it the same cluster while using all K clusters:
it maximises the mutual information of the two assignments' joint distribution over a batch. The
perturbation is a small random affine warp (rotation, scale, shear, shift) and, for half the images,
pixel noise: what changes the style of a digit and not which digit it is, so the clusters that
survive are the digits. No label is read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Warp ranges (uniform, +-): rotation in radians, relative scale, shear, shift as a fraction of the half-side.
ROTATION, SCALE, SHEAR, SHIFT, NOISE = 0.35, 0.15, 0.2, 0.15, 0.1


def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x [N, C, H, W] in [-1, 1] warped by a random affine map each, drawn from `gen` (CPU generator:
    seeded and checkpointed with the run, so a resumed run draws the same warps)."""
    n = x.shape[0]
    u = torch.rand(6, n, generator=gen) * 2 - 1
    noisy = torch.rand(n, generator=gen) < 0.5
    noise = torch.randn(x.shape, generator=gen)
    angle, scale = u[0] * ROTATION, 1 + u[1] * SCALE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + u[2] * SHEAR, u[3] * SHIFT], 1), torch.stack([sin, cos, u[4] * SHIFT], 1)],
        1,
    ).to(x.device, torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # warp x + 1 with zero padding: what comes in from outside the image is the background (-1)
    y = F.grid_sample(x.float() + 1, grid, align_corners=False, padding_mode="zeros") - 1
    y = y + NOISE * noise.to(x.device) * noisy.to(x.device).view(n, 1, 1, 1)
    return y.clamp(-1, 1).to(x.dtype)


def iic_loss(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8, lamb: float = 1.0) -> torch.Tensor:
    """-I(c; c') of the paired assignments softmax(a), softmax(b) [N, K] (symmetrised joint, as IIC).

    Minimal (-log K) when each pair agrees and the K clusters share the batch equally. `lamb` > 1
    weights the marginals' entropy more (the `lamb` of IIC's code): a clustering that merges two
    classes pays more (InfoGAN's clusterer: `cluster_lamb`, 1.5 by default).
    """
    p = F.softmax(a.float(), 1).T @ F.softmax(b.float(), 1) / a.shape[0]
    p = ((p + p.T) / 2).clamp_min(eps)
    return -(p * (p.log() - lamb * p.sum(1, keepdim=True).log() - lamb * p.sum(0, keepdim=True).log())).sum()
