"""Progressive growing of GANs (Karras et al. 2018): 4 -> 8 -> 16 -> 32 px with fade-in.

The schedule is config (`family_params`): `stable_steps[i]` steps at resolution i, then `fade_steps`
steps fading in resolution i + 1 (alpha 0 -> 1); the last resolution trains until the run ends.
`schedule(step)` sets stage and alpha on G and D (buffers: they travel in checkpoints and into
the EMA copy) and keeps them as the family's extra state; both are a pure function of the step,
so a run resumed mid-fade continues bit-identically. Every resolution exists from the start
(training/nets/progan.py): inactive blocks simply get no gradients.

Loss as in the paper: WGAN-GP (lambda `gp_lambda`, one critic step) plus the drift term
`drift` * E[D(x)^2] on reals; Adam 1e-3, betas (0, 0.99). Reals are average-pooled to the current
resolution and, during a fade, blended with their 2x-coarser version by the same alpha as G.
The mode-seeking term (`diversity_weight`, as the default preset's) is optional, off by default.
Grids are named by stage (samples/stage-8px-step-*.png). Export: the final resolution.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gan_core.card import InputSpec
from gan_core.errors import UserError
from training.config import TrainConfig
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.common import adam, arch_settings, resolve_adam_family, rows_grid, zl_inputs
from training.families.params import FamilySettings
from training.families.terms import paired, with_mode_seeking
from training.losses import WGANGPLoss
from training.nets.karras_layers import upsample2x
from training.nets.progan import ProDiscriminator, ProGenerator, ProInference, grown_size, pad_to, resolutions
from training.registry import register_family

ARCH = "progan"


class ProGANSettings(FamilySettings):
    """family_params of the progan family: the growth schedule and the drift weight."""

    stable_steps: list[Annotated[int, Field(ge=0)]] = Field(
        [1000, 1000, 1000],
        description="steps at each resolution before the next one fades in (all but the last)",
    )
    fade_steps: list[Annotated[int, Field(ge=0)]] = Field(
        [500, 500, 500], description="fade-in length of each new resolution (0 = switch at once)"
    )
    drift: float = Field(0.001, ge=0, description="weight of E[D(real)^2] (keeps the critic near 0)")


class ProGANArch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    g_width: int = Field(16, ge=1, description="channels at the grown resolution (x2 per halving)")
    g_max_width: int = Field(128, ge=1)
    d_width: int = Field(16, ge=1)
    d_max_width: int = Field(128, ge=1)
    mbstd_group: int = Field(4, ge=1)


def growth_at(step: int, stable: list[int], fade: list[int]) -> tuple[int, float]:
    """(stage, alpha) at `step`: stage i for stable[i] steps, then stage i + 1 fading in over fade[i]."""
    t = step
    for i, (s, f) in enumerate(zip(stable, fade, strict=True)):
        if t < s:
            return i, 1.0
        t -= s
        if t < f:
            return i + 1, t / f
        t -= f
    return len(stable), 1.0


def check_schedule(p: ProGANSettings, res: list[int]) -> None:
    n = len(res) - 1
    for name in ("stable_steps", "fade_steps"):
        values = getattr(p, name)
        if len(values) != n:
            lows = ", ".join(map(str, res[:-1]))
            raise UserError(
                f"family_params.{name}: needs {n} entries (one per resolution {lows}; "
                f"{res[-1]} px trains to the end), got {values}"
            )


@register_family("progan")
class ProGANFamily(Family):
    """Progressively grown G and D, WGAN-GP + drift (module doc)."""

    settings_model = ProGANSettings
    p: ProGANSettings

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.arch = arch_settings(ProGANArch, cfg, self.name)
        self.res = resolutions(data.image_shape)
        check_schedule(self.p, self.res)
        self.top = grown_size(data.image_shape)
        self.loss = WGANGPLoss(gp_lambda=cfg.gp_lambda)
        self.stage, self.alpha = 0, 1.0

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.loss not in ("ns", "wgan-gp"):  # 'ns' is the config default
            raise UserError(f"loss: the progan family trains with WGAN-GP + drift, got {cfg.loss!r}")
        return resolve_adam_family(
            super().resolve(cfg), "progan", ARCH, ProGANArch, 1e-3, (0.0, 0.99), loss="wgan-gp"
        )

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        a, d, c = self.arch, self.data, self.cfg
        return {
            "g": ProGenerator(
                c.latent_dim, d.num_classes, c.conditional, d.image_shape, a.g_width, a.g_max_width
            ),
            "d": ProDiscriminator(
                d.num_classes, c.conditional, d.image_shape, a.d_width, a.d_max_width, a.mbstd_group
            ),
        }

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        return {
            name: adam(c, self.nets[name].parameters(), lr) for name, lr in (("g", c.lr_g), ("d", c.lr_d))
        }

    # ---- growth -------------------------------------------------------------------------------
    def schedule(self, step: int) -> None:
        self.stage, self.alpha = growth_at(step, self.p.stable_steps, self.p.fade_steps)
        for net in self.nets.values():
            net.set_growth(self.stage, self.alpha)

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"stage": torch.tensor(self.stage), "alpha": torch.tensor(self.alpha)}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "stage" in tensors:
            self.stage, self.alpha = int(tensors["stage"]), float(tensors["alpha"])

    def reals_at_stage(self, real: torch.Tensor) -> torch.Tensor:
        """Real images at the current resolution (padded to the grown size, pooled, faded like G)."""
        x = pad_to(real, self.top)
        x = F.avg_pool2d(x, self.top // self.res[self.stage]) if self.res[self.stage] < self.top else x
        if self.stage > 0 and self.alpha < 1.0:
            x = torch.lerp(upsample2x(F.avg_pool2d(x, 2)), x, self.alpha)
        return x

    # ---- phases -------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("d", self.d_step, repeats=self.cfg.n_critic), Phase("g", self.g_step, ema=True)]

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, labels = ctx.next_batch()
        cond = labels if self.cfg.conditional else None
        real = self.reals_at_stage(real)
        z = torch.randn(real.shape[0], self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(z, cond).to(real.dtype)
            d_real, d_fake = D(real, cond).float(), D(fake, cond).float()
            loss = d_fake.mean() - d_real.mean() + self.p.drift * d_real.square().mean()
            loss = loss + self.loss.penalty(D, real, fake.float(), cond)
        self.optimize("d", loss)
        return {"d_loss": loss.item()}

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        G, D, n = ctx.nets["g"], ctx.nets["d"], self.cfg.batch_size
        z = torch.randn(n, self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        labels, diversity = None, self.cfg.diversity_weight
        if self.cfg.conditional:
            labels = torch.randint(0, self.data.num_classes, (n,), generator=ctx.noise).to(ctx.device)
            paired(diversity, labels)
        with ctx.autocast():
            fake = G(z, labels)
            loss = with_mode_seeking(-D(fake, labels).float().mean(), diversity, fake, z)
        self.optimize("g", loss)
        return {"g_loss": loss.item()}

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        return zl_inputs(self.cfg)

    def inference_module(self, g: nn.Module) -> nn.Module:
        return ProInference(g).eval()

    def card_variant(self) -> str:
        return "wgan-gp+drift"

    def card_arch_params(self) -> dict:
        return {**self.arch.model_dump(), "resolutions": self.res, "resolution": self.res[self.stage],
                "fade_alpha": self.alpha}  # fmt: skip

    def eval_caveat(self) -> str | None:
        if self.stage == len(self.res) - 1 and self.alpha >= 1.0:
            return None
        to = self.res[self.stage]
        where = f"fading in {to} px (alpha {self.alpha:.2f})" if self.alpha < 1.0 else f"at {to} px"
        return f"still growing: {where}, final {self.res[-1]} px"

    def grid_name(self, step: int) -> str:
        fading = f"-fade{math.floor(self.alpha * 100) / 100:.2f}" if self.alpha < 1.0 else ""  # 0.998 -> 0.99
        return f"stage-{self.res[self.stage]}px{fading}-step-{step:07d}"

    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        def run(z, labels, gen):
            return g(z, labels) if labels is not None else g(z)

        return rows_grid(run, self.cfg.latent_dim, self.data.num_classes, self.cfg.conditional, device)
