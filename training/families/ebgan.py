"""EBGAN (Zhao et al. 2017): the discriminator is an autoencoder and an image's energy is its
reconstruction error; D lowers the energy of real images and raises that of generated ones up to
a margin, G lowers the energy of its images and is kept diverse by the pulling-away term.

    D(x)  = mean_pixels (Dec(Enc(x)) - x)^2
    L_D   = D(x) + max(0, m - D(G(z)))
    L_G   = D(G(z)) + lambda_pt * PT(Enc(G(z)))
    PT(S) = 1 / (N (N - 1)) * sum_{i != j} (s_i . s_j / (|s_i| |s_j|))^2   (the batch's encoder codes)

family_params: `margin` m (1.0: the energy is a per-pixel mean, so it lives in [0, 4] for images in
[-1, 1]), `pt_weight` lambda_pt (0.1, the paper's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from training.families._autoencoder import AutoencoderGAN, per_sample
from training.families.base import StepContext
from training.families.params import FamilySettings
from training.registry import register_family


class EBGANSettings(FamilySettings):
    """family_params of the ebgan family."""

    margin: float = Field(1.0, gt=0, description="m: fakes' energy is pushed up to this per-pixel mean error")
    pt_weight: float = Field(0.1, ge=0, description="lambda_pt of the pulling-away term (0 = off)")


def pulling_away(codes: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity over the distinct pairs of a batch of codes [N, ...] (N >= 2)."""
    s = F.normalize(codes.flatten(1), dim=1)
    n = s.shape[0]
    sim = s @ s.t()
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return sim[off].pow(2).sum() / (n * (n - 1))


def margin_loss(real_energy: torch.Tensor, fake_energy: torch.Tensor, margin: float) -> torch.Tensor:
    """D's loss: real energies down, generated ones up, but only while they are below the margin."""
    return real_energy.mean() + F.relu(margin - fake_energy).mean()


@register_family("ebgan")
class EBGANFamily(AutoencoderGAN):
    """DCGAN generator vs autoencoder discriminator, margin loss, pulling-away term (see module doc)."""

    settings_model = EBGANSettings
    own_loss = "margin"

    # ---- losses: the energy (margin and pulling-away terms above) -----------------------------
    def error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return per_sample((recon - x).pow(2))

    # ---- phases: the classic family's D and G phases ------------------------------------------
    def d_step(self, ctx: StepContext) -> dict[str, float]:
        with ctx.autocast():
            real, fake, _, _ = self.d_errors(ctx)
            loss = margin_loss(real, fake, self.p.margin)
        self.optimize("d", loss)
        return {"d_loss": loss.item(), "energy_real": real.mean().item(), "energy_fake": fake.mean().item()}

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        with ctx.autocast():
            fake, z, energy, code = self.g_scored(ctx)
            pt = pulling_away(code)
            loss = self.with_g_terms(energy.mean() + self.p.pt_weight * pt, fake, z)
        self.optimize("g", loss)
        return {"g_loss": loss.item(), "pulling_away": pt.item()}
