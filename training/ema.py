"""Exponential moving average of generator weights, and BatchNorm re-estimation for inference.

The EMA copy is what gets sampled, evaluated and exported. Its BatchNorm statistics are
re-estimated from its own outputs before use, because averaged weights do not match the raw
generator's running statistics, and serving needs per-image (eval-mode) normalisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.decay = decay
        self.start = start
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up (as in TF's ExponentialMovingAverage with num_updates): early on the average would
        # otherwise be dominated by the random initial weights for ~1/(1-decay) steps.
        decay = min(self.decay, (1.0 + step) / (10.0 + step)) if step >= self.start else 0.0
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


@torch.no_grad()
def recalibrated(
    generator: nn.Module,
    inputs: Callable[[int, int, torch.Generator], list[torch.Tensor]],
    batches: int = 8,
    batch_size: int = 256,
    seed: int = 12345,
) -> nn.Module:
    """A copy of `generator` in eval mode whose BatchNorm stats are the exact mean over fresh samples.

    inputs(batch, n, gen) gives the generator's positional inputs for batch `batch` of n images,
    drawn from `gen` (the family knows what its generator takes).
    """
    g = copy.deepcopy(generator)
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return g.eval()
    device = next(g.parameters()).device
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    g.train()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for i in range(batches):
        g(*[t.to(device) for t in inputs(i, batch_size, gen)])
    for m, orig in zip(
        bns, [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)], strict=True
    ):
        m.momentum = orig.momentum
    return g.eval()
