"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) of everything D sees, real and fake.

D judges augmented images in its own step and in G's, so G's gradient flows through the same
augmentation and G still learns the un-augmented distribution (the paper's point: augmenting the
reals alone would teach G the augmentations). Policies as the paper's official code (mit-han-lab/
data-efficient-gans, DiffAugment_pytorch.py): 'color' (brightness +-0.5, saturation x[0, 2],
contrast x[0.5, 1.5]), 'translation' (per-image shifts up to 1/8 of the side, zero padding),
'cutout' (one zero square of half the side per image). Every draw comes from the generator passed
in (the run's checkpointed noise stream), so a run and its resume augment identically; kept here as
~50 lines since the paper's code is not a package and kornia's pipelines would add a dependency.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> (); unknown names raise ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICIES)}")
    return names


def _uniform(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, generator=gen).to(x.device, x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = x + (_uniform(x, gen, 1, 1, 1) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (_uniform(x, gen, 1, 1, 1) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, gen, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen).to(x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(-1, h)  # -1 / h: the zero pad
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(-1, w)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows + 1, cols + 1].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (
        (rows >= cy - ch // 2)
        & (rows < cy - ch // 2 + ch)
        & (cols >= cx - cw // 2)
        & (cols < cx - cw // 2 + cw)
    )
    return x * (~inside).to(x.dtype)[:, None]


_FUNCS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """x after each policy of `policy` in order, drawn per image from `gen`; x itself when the policy is empty."""
    for name in policy:
        x = _FUNCS[name](x, gen)
    return x.contiguous() if policy else x
