"""The classic adversarial family: one generator, one discriminator, any registered loss.

Networks: the registered architectures (training/nets: the Keras MLP, DCGAN), unconditional or
class-conditional (label embedding into G; concat or projection D). Losses: minimax, non-saturating,
LSGAN, WGAN (clipping), WGAN-GP, hinge (training/losses), each bringing its paper's optimiser,
learning rates, critic steps and spectral-norm default. Phases: D `n_critic` times, then G once per
step. Optional mode-seeking term (MSGAN, Mao et al. 2019) on the G step; optional DiffAugment of
what D sees (`augment`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gan_core.card import InputSpec
from training.config import TrainConfig
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.common import make_optimizer, rows_grid, zl_inputs
from training.families.terms import paired, r1_penalty, with_mode_seeking
from training.registry import get_arch, get_loss, register_family


# ---- settings: the loss's paper defaults fill the run's optimiser fields ----------------------
def resolve_loss_defaults(cfg: TrainConfig) -> TrainConfig:
    """Fill None optimiser / critic / spectral-norm fields from the loss's paper defaults."""
    loss = get_loss(cfg.loss)
    opt = loss.optimizer
    return cfg.model_copy(
        update={
            "n_critic": cfg.n_critic or loss.n_critic,
            "optimizer": cfg.optimizer or opt["name"],
            "lr_g": cfg.lr_g or opt["lr_g"],
            "lr_d": cfg.lr_d or opt["lr_d"],
            "betas": cfg.betas or tuple(opt.get("betas", (0.5, 0.999))),
            "spectral_norm": loss.default_sn if cfg.spectral_norm is None else cfg.spectral_norm,
        }
    )


# ---- networks ---------------------------------------------------------------------------------
def build_arch(cfg: TrainConfig, data: DataInfo) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the registered architecture `cfg.arch`."""
    return get_arch(cfg.arch)(
        tuple(data.image_shape), data.num_classes, cfg.conditional, cfg.latent_dim,
        cond_mode=cfg.cond_mode, sn=cfg.spectral_norm, **cfg.arch_params,
    )  # fmt: skip


@register_family("gan")
class AdversarialFamily(Family):
    """G and D of a registered architecture, trained with a registered loss (see module doc)."""

    diffaugments = True  # d_step / g_step pass what D sees through self.diffaugment; subclasses that
    # replace those steps set it back to False until theirs do
    lazy_penalty = True  # d_step adds the loss's penalty through self.penalty (gp_every)

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.loss = get_loss(cfg.loss)(gp_lambda=cfg.gp_lambda, clip=cfg.clip)

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        return resolve_loss_defaults(cls.with_settings(cfg))

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        g, d = build_arch(self.cfg, self.data)
        return {"g": g, "d": d}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        return {
            "g": make_optimizer(cfg, self.nets["g"].parameters(), cfg.lr_g),
            "d": make_optimizer(cfg, self.nets["d"].parameters(), cfg.lr_d),
        }

    # ---- losses: the registered loss (self.loss), plus G's terms ------------------------------
    def g_penalty(self) -> torch.Tensor | None:
        """A regulariser on G's own weights added to every G loss (None: none)."""
        return None

    def with_g_terms(self, loss: torch.Tensor, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The G loss plus the mode-seeking term (when weighted) and the family's weight penalty."""
        loss = with_mode_seeking(loss, self.cfg.diversity_weight, fake, z)
        penalty = self.g_penalty()
        return loss if penalty is None else loss + penalty

    # ---- phases -------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """D `n_critic` times, then G (subclasses replace d_step / g_step and keep these phases)."""
        return [Phase("d", self.d_step, repeats=self.cfg.n_critic), Phase("g", self.g_step, ema=True)]

    def d_inputs(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(real images, their labels or None when unconditional, latents for as many fakes) of a D step."""
        real, labels = ctx.next_batch()
        z = torch.randn(real.shape[0], self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        return real, labels if self.cfg.conditional else None, z

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, cond, z = self.d_inputs(ctx)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(z, cond)
            both_labels = torch.cat([cond, cond]) if cond is not None else None
            out = D(self.diffaugment(torch.cat([real, fake.to(real.dtype)]), ctx), both_labels).float()
            real_out, fake_out = out[: real.shape[0]], out[real.shape[0] :]
            loss = self.loss.d_loss(real_out, fake_out)
            pen = self.penalty(ctx, D, real, fake.float(), cond)
            if pen is not None:
                loss = loss + pen
        self.optimize("d", loss)
        self.loss.after_d_step(self.nets["d"])
        return {"d_loss": loss.item(), **self.loss.logged(real_out.detach(), fake_out.detach())}

    def penalty(self, ctx: StepContext, D, real, fake, labels) -> torch.Tensor | None:
        """The loss's gradient penalty and the run's R1 term (`r1_gamma`) on every `gp_every`-th critic
        step, weighted `gp_every` times (lazy regularisation, Karras et al. 2020): a double backward is a
        third of a WGAN-GP step here."""
        cfg, every = self.cfg, self.cfg.gp_every
        if (ctx.step * (cfg.n_critic or 1) + ctx.extra.get("repeat", 0)) % every:
            return None
        pen = self.loss.penalty(D, real, fake, labels)
        if cfg.r1_gamma:
            # through the run's DiffAugment, as ADA takes StyleGAN's R1: D's gradient where D looks
            r1 = r1_penalty(lambda x, y: D(self.diffaugment(x, ctx), y), real, labels) * (cfg.r1_gamma / 2)
            pen = r1 if pen is None else pen + r1
        return pen if pen is None or every == 1 else pen * every

    def g_inputs(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(latents, labels or None) of a G step; with the mode-seeking term, pairs (i, i + n/2) share a label."""
        cfg, n = self.cfg, self.cfg.batch_size
        z = torch.randn(n, cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        labels = (
            torch.randint(0, self.data.num_classes, (n,), generator=ctx.noise).to(ctx.device)
            if cfg.conditional
            else None
        )
        paired(cfg.diversity_weight, labels)
        return z, labels

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        z, labels = self.g_inputs(ctx)
        with ctx.autocast():
            fake = G(z, labels)
            loss = self.with_g_terms(
                self.loss.g_loss(D(self.diffaugment(fake, ctx), labels).float()), fake, z
            )
        self.optimize("g", loss)
        return {"g_loss": loss.item()}

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        return zl_inputs(self.cfg)

    def card_variant(self) -> str:
        return self.cfg.loss

    def card_arch_params(self) -> dict:
        cfg = self.cfg
        return {**cfg.arch_params, "cond_mode": cfg.cond_mode, "spectral_norm": cfg.spectral_norm}

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        """z, and for a conditional G the classes in turn (every class equally often)."""
        z = torch.randn(n, self.cfg.latent_dim, generator=gen)
        if not self.cfg.conditional:
            return [z]
        return [z, (torch.arange(n) + batch * n) % self.data.num_classes]

    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        """Fixed latents: one row per class (up to 16) for conditional models, 8 rows otherwise."""

        def run(z, labels, gen):
            return g(z) if labels is None else g(z, labels)

        return rows_grid(run, self.cfg.latent_dim, self.data.num_classes, self.cfg.conditional, device)
