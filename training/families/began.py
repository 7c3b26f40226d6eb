"""BEGAN (Berthelot et al. 2017): an autoencoder discriminator with L1 reconstruction error, balanced
by a proportional controller instead of a margin.

    L(v)    = mean_pixels |v - D(v)|^eta      (eta = `norm`, 1 or 2 as the paper allows; 1 by default)
    L_D     = L(x) - k_t L(G(z_D)) [+ alpha ||z_D - Enc(G(z_D))||_2]     L_G = L(G(z_G))
    k_t+1   = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, k_max)     (the paper's k_max: 1)
    M_global = L(x) + |gamma L(x) - L(G(z_G))|   (the convergence measure)

gamma (diversity ratio, 0.5), lambda_k (0.001), k_max (1) and eta are family_params (defaults: the
paper's), k_0 = 0 as in the paper. k_max below 1 keeps D's loss positive while fakes are less than
1 / k_max times as hard to reconstruct as reals: once k_t L(G(z)) nears L(x), D lowers its loss fastest by
spoiling every reconstruction, fakes' and reals' alike, and the run blows up (docs/families-log.md). The
bracketed term is BEGAN-CS's latent constraint (Chang et al. 2018; `latent_constraint` = alpha, 0 = off,
logged as `latent_gap`): the encoder must map each fake back to its latent, which kept both errors
falling where without it they crept up at k_t's cap (docs/families-log.md). `share_fakes` trains G on
the fakes its step's D step scored (z_D = z_G: one G forward per step instead of two). k_t is family
state kept in the checkpoint (a resumed run continues the controller exactly); k_t, M_global and the two
errors the controller compares (`recon_real` L(x), `recon_fake` L(G(z_G))) go to metrics.jsonl with the
losses and are plotted in curves.png. The controller is updated after each G step from that step's
L(G(z_G)) and the D step's L(x), averaged over the ranks.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from gan_core.errors import UserError
from training.distributed import mean_across_ranks
from training.families._autoencoder import AutoencoderGAN, per_sample
from training.families.base import StepContext
from training.families.params import FamilySettings
from training.registry import register_family


class BEGANSettings(FamilySettings):
    """family_params of the began family (the paper's values)."""

    gamma: float = Field(
        0.5,
        gt=0,
        le=4,
        description="diversity ratio: the equilibrium asks L(G(z)) = gamma L(x); the paper's range is (0, 1], "
        "above 1 asks fakes to be harder to reconstruct than reals (on MNIST they are: k_t engages only there)",
    )
    lambda_k: float = Field(0.001, gt=0, le=1, description="the controller's gain on gamma L(x) - L(G(z))")
    k_max: float = Field(
        1.0,
        gt=0,
        le=1,
        description="k_t's upper clamp (the paper's: 1); once k_t L(G(z)) nears L(x), D "
        "spoils its reconstructions of reals and fakes alike to push fakes away",
    )
    latent_constraint: float = Field(
        0.0,
        ge=0,
        description="BEGAN-CS's weight alpha on ||z - Enc(G(z))|| in D's loss (0: off, the paper's BEGAN); "
        "needs the autoencoder's code_dim equal to latent_dim",
    )
    share_fakes: bool = Field(
        False,
        description="the G step trains on the fakes its step's D step scored (z_D = z_G, one G forward per "
        "step, as PyTorch's DCGAN example and common BEGAN code do) instead of drawing fresh ones (the paper)",
    )
    norm: Literal[1, 2] = Field(
        1,
        description="eta, the reconstruction error's exponent: L(v) = mean |v - D(v)|^eta (the paper: 1 or 2)",
    )


def latent_constraint(z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """BEGAN-CS's constraint (Chang et al. 2018): the mean L2 distance between each fake's latent z and
    D's code of G(z); weighted into D's loss, it makes the encoder map each fake back to its latent."""
    return (z.float() - code.float()).norm(dim=1).mean()


def k_update(
    k: float, real_error: float, fake_error: float, gamma: float, lambda_k: float, k_max: float = 1.0
) -> tuple[float, float]:
    """(k_t+1, M_global) from k_t, L(x) and L(G(z_G)): the paper's controller step and convergence measure
    (k clamped to [0, k_max]; the paper's k_max is 1)."""
    balance = gamma * real_error - fake_error
    return min(max(k + lambda_k * balance, 0.0), k_max), real_error + abs(balance)


@register_family("began")
class BEGANFamily(AutoencoderGAN):
    """Generator vs autoencoder discriminator (ELU unless arch_params say otherwise), L1 energies,
    equilibrium controller (see module doc)."""

    activation = "elu"
    lr = 1e-4
    settings_model = BEGANSettings
    own_loss = "equilibrium"

    @classmethod
    def resolve(cls, cfg):
        """The autoencoder families' resolution, plus what BEGAN's own settings need of the rest of the run."""
        cfg = super().resolve(cfg)
        p, code_dim = cfg.family_params, cfg.arch_params["code_dim"]
        if p["latent_constraint"] and code_dim != cfg.latent_dim:
            raise UserError(
                f"family_params: latent_constraint compares D's code with z, so arch_params code_dim "
                f"({code_dim}) must equal latent_dim ({cfg.latent_dim})"
            )
        if p["share_fakes"] and cfg.n_critic != 1:
            raise UserError(
                f"family_params: share_fakes needs one D step per G step, got n_critic={cfg.n_critic}"
            )
        return cfg

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.k = 0.0  # k_0
        self.real_error = 0.0  # L(x) of the latest D step
        self.shared = None  # share_fakes: the D step's fakes (images, latents, labels) for this step's G step

    # ---- losses: the energy -------------------------------------------------------------------
    def error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        diff = (recon - x).abs()
        return per_sample(diff if self.p.norm == 1 else diff.square())

    # ---- phases: the classic family's D and G phases, the controller after G ------------------
    def d_step(self, ctx: StepContext) -> dict[str, float]:
        with ctx.autocast():
            if self.p.share_fakes:  # drawn as a G step draws them, kept with their graph for it
                z, labels = self.g_inputs(ctx)
                self.shared = (ctx.nets["g"](z, labels), z, labels)
            real, fake, z, code = self.d_errors(ctx, self.shared)
            loss = real.mean() - self.k * fake.mean()
            if self.p.latent_constraint:
                constraint = latent_constraint(z, code)
                loss = loss + self.p.latent_constraint * constraint
        self.optimize("d", loss)
        self.real_error = real.mean().item()
        logs = {"d_loss": loss.item()}
        if self.p.latent_constraint:
            logs["latent_gap"] = constraint.item()
        return logs

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        with ctx.autocast():
            if self.shared is not None:
                (fake, z, labels), self.shared = self.shared, None
                err, _ = self.scored(ctx, fake, labels)
            else:
                fake, z, err, _ = self.g_scored(ctx)
            loss = self.with_g_terms(err.mean(), fake, z)
        self.optimize("g", loss)
        real_error, fake_error = mean_across_ranks([self.real_error, err.mean().item()])
        self.k, m_global = k_update(
            self.k, real_error, fake_error, self.p.gamma, self.p.lambda_k, self.p.k_max
        )
        return {
            "g_loss": loss.item(), "k_t": self.k, "m_global": m_global,
            "recon_real": real_error, "recon_fake": fake_error,
        }  # fmt: skip

    # ---- state: the controller's k_t ----------------------------------------------------------
    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"k": torch.tensor([self.k], dtype=torch.float64)}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "k" in tensors:
            self.k = float(tensors["k"][0])
