"""BigGAN-style family (Brock et al. 2019), small: the classic hinge loop plus orthogonal regularisation.

Networks: training/nets/biggan.py (hierarchical latent, shared class embedding into conditional
BatchNorm, residual blocks, projection D, spectral norm and orthogonal init in both). Training: hinge
loss, Adam (0, 0.999), G's weights pulled towards orthogonal rows by
beta * sum_W ||W W^T * (1 - I)||_F^2 (beta = family_params['ortho_reg'], 1e-4), EMA generator (the
trainer's). Truncation trick: the card's only latent input is the whole hierarchical z, so the
feed builder's `truncation` (gan_core.feeds: entries with |z| > t redrawn from the image's own
seeded stream) truncates every chunk, as BigGAN does; the service takes it as `truncation`.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from gan_core.card import InputSpec, class_input, latent_input
from training.families.gan import AdversarialFamily
from training.families.params import FamilySettings
from training.registry import register_family


class BigGANSettings(FamilySettings):
    """family_params of the biggan family."""

    ortho_reg: float = Field(1e-4, ge=0, description="beta of the orthogonal regularisation on G (0 = off)")


def orthogonal_penalty(weights: list[torch.Tensor]) -> torch.Tensor:
    """sum over W of ||W W^T * (1 - I)||_F^2, W flattened to [out, fan_in]: only the rows' overlaps count.

    BigGAN's relaxed orthogonal regularisation: unlike ||W W^T - I||, it leaves the rows' norms free.
    Computed as ||W^T W||_F^2 - sum_i ||w_i||^4 (the same number, since ||W W^T||_F = ||W^T W||_F),
    so a tall matrix such as the first linear layer's [c0 * s * s, chunk] costs a chunk x chunk Gram.
    """
    total = weights[0].new_zeros(())
    for w in weights:
        m = w.flatten(1)
        gram = m @ m.t() if m.shape[0] <= m.shape[1] else m.t() @ m
        total = total + gram.pow(2).sum() - m.pow(2).sum(1).pow(2).sum()
    return total


def regularised_weights(g: nn.Module) -> list[torch.Tensor]:
    """G's matrices and kernels (the raw weights under spectral norm), except the shared class embedding."""
    skip = {id(p) for p in g.shared.parameters()} if getattr(g, "shared", None) is not None else set()
    return [p for p in g.parameters() if p.dim() >= 2 and id(p) not in skip]


@register_family("biggan")
class BigGANFamily(AdversarialFamily):
    """training/nets/biggan.py networks, hinge loss, orthogonal regularisation on G (see module doc)."""

    settings_model = BigGANSettings
    p: BigGANSettings

    def g_penalty(self) -> torch.Tensor | None:
        beta = self.p.ortho_reg
        return beta * orthogonal_penalty(regularised_weights(self.nets["g"])) if beta else None

    def card_inputs(self) -> list[InputSpec]:
        z = latent_input(self.cfg.latent_dim).model_copy(
            update={
                "description": "hierarchical N(0, 1) latent drawn from the seed: equal chunks feed the first "
                "layer and each up-block; `truncation` redraws entries beyond it (BigGAN's truncation trick)"
            }
        )
        return [z] + ([class_input()] if self.cfg.conditional else [])

    def card_variant(self) -> str:
        return "biggan"

    def card_arch_params(self) -> dict:
        return {**super().card_arch_params(), "ortho_reg": self.p.ortho_reg}
