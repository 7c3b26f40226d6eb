"""Loss terms several families add to their objectives, written once (each family's own terms live in
its module, next to its paper's equations).

- the mode-seeking term (MSGAN, Mao et al. 2019) on a G step, `diversity_weight` of the run: every
  family whose generator takes a latent offers it (gan, acgan, infogan, progan, stylegan and, through
  the classic family's G terms, biggan, ebgan, began);
- R1 (Mescheder et al. 2018), the gradient penalty on reals: the classic family's `r1_gamma`, StyleGAN's
  lazy Dreg phase;
- the class loss of a classifier head on raw logits (ACGAN's auxiliary classifier, InfoGAN's Q head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mode_seeking_penalty(
    fake: torch.Tensor, z: torch.Tensor, half: int, cap: float | None = None
) -> torch.Tensor:
    """1 / (mean |x1 - x2| / mean |z1 - z2|) over the pairs (i, i + half): small when outputs differ.

    Mao et al. 2019 (MSGAN): a generator that ignores z within a class pays for it directly.
    cap: the ratio counts up to this value only (DSGAN's clamp, Yang et al. 2019): past it, z need
    not change the image any further.
    """
    dx = (fake[:half] - fake[half : 2 * half]).abs().mean()
    dz = (z[:half] - z[half : 2 * half]).abs().mean()
    ratio = dx / dz if cap is None else (dx / dz).clamp(max=cap)
    return 1.0 / (ratio + 1e-5)


def share_pairs(*batches: torch.Tensor) -> None:
    """In place: rows i + n/2 take rows i's values, so the pairs mode_seeking_penalty compares share them."""
    for t in batches:
        half = t.shape[0] // 2
        t[half : 2 * half] = t[:half]


def paired(weight: float, *batches: torch.Tensor | None) -> None:
    """With the mode-seeking term on (`weight`), the G step's conditioning inputs (labels, codes; None
    skipped) shared by each pair (i, i + n/2), so a pair differs in z only."""
    if weight:
        share_pairs(*(t for t in batches if t is not None))


def with_mode_seeking(loss: torch.Tensor, weight: float, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A G loss plus `weight` x the mode-seeking penalty of the fakes and their latents z (pairs
    (i, i + n/2), n = len(z)); the loss itself when `weight` is 0."""
    if not weight:
        return loss
    return loss + weight * mode_seeking_penalty(fake.float(), z, z.shape[0] // 2)


def r1_penalty(D, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """E |grad_x D(x)|^2 over the real images x (labels: D's conditioning, None when it takes none).

    Mescheder et al. 2018: penalising D's gradient on the data alone keeps the game near its equilibrium,
    where a non-saturating GAN otherwise oscillates. D is any callable (x, labels) -> logits."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, labels).float().sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def aux_loss(class_logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """The class loss of raw logits: cross-entropy (no softmax before it: F.cross_entropy takes
    logits), or the Crammer-Singer multi-class hinge mean(relu(1 - (f_y - max_{k != y} f_k)))."""
    logits = class_logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, labels)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    best_other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return F.relu(1.0 - (true - best_other)).mean()
