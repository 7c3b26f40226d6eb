"""StyleGAN2-style family (Karras et al. 2019, 2020): training phases as in stylegan2-ada-pytorch.

Phases per step: Gmain (non-saturating logistic loss, style mixing with probability
`style_mixing`, w_avg tracking), optional Greg (path-length regularisation every `pl_every` steps),
Dmain (logistic loss), Dreg (R1 on reals, lazy: every `r1_every` steps with the penalty scaled by the
interval, and Adam's lr / betas adjusted by interval / (interval + 1) as the paper's lazy
regularisation does). With `aux_weight`, D also has ACGAN's class head: Dmain adds its class loss on
the real images, Gmain the class loss of its fakes (MHingeGAN's hinge by default, as the acgan family).
The EMA generator is what gets sampled and exported.

Exported inputs: z, labels (conditional), truncation_psi (in W, towards w_avg: per class for a
conditional G), z_mix + mix_layer (style mixing: layers >= mix_layer use z_mix), and one noise input
per resolution, which the feed builder fills from the seed (noise_mode seeded / const / none).
`augment` (DiffAugment) applies to what D sees in every D call: Gmain's fakes, Dmain's reals and fakes,
and Dreg's reals, whose R1 gradient is taken through the augmentation. Networks: training/nets/stylegan.py.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gan_core.card import InputSpec, class_input, latent_input
from gan_core.errors import UserError
from training.config import TrainConfig
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.common import adam, arch_settings, resolve_adam_family, rows_grid
from training.families.params import FamilySettings
from training.families.terms import aux_loss, paired, r1_penalty, with_mode_seeking
from training.nets.stylegan import (
    StyleDiscriminator,
    StyleGenerator,
    StyleInference,
    noise_shapes,
    num_ws,
)
from training.registry import register_family

ARCH = "stylegan"
PSI_RANGE = (0.0, 1.5)


class StyleGANSettings(FamilySettings):
    """family_params of the stylegan family (training settings; networks are in arch_params)."""

    r1_gamma: float = Field(0.1, ge=0, description="R1 weight on reals (0 = off)")
    r1_every: int = Field(16, ge=1, description="lazy R1 interval in steps")
    style_mixing: float = Field(0.9, ge=0, le=1, description="probability of a mixed batch")
    pl_weight: float = Field(0.0, ge=0, description="path-length regularisation weight (0 = off)")
    pl_every: int = Field(4, ge=1)
    pl_decay: float = Field(0.01, gt=0, le=1)
    pl_batch_shrink: int = Field(2, ge=1)
    w_avg_beta: float = Field(0.995, ge=0, lt=1, description="w_avg <- mean(w) + beta (w_avg - mean(w))")
    aux_weight: float = Field(
        0.0,
        ge=0,
        description="ACGAN's class head on D (conditional runs; 0 = off): D learns to classify the "
        "real images, G is pulled towards images it classifies as the asked class, with this weight",
    )
    aux_loss: Literal["ce", "hinge"] = Field(
        "hinge",
        description="the class loss: cross-entropy, or MHingeGAN's multi-class hinge (a fake stops "
        "being pulled once its class wins by a margin), as the acgan family's",
    )


class StyleGANArch(BaseModel):
    """arch_params of the stylegan networks."""

    model_config = ConfigDict(extra="forbid")

    w_dim: int = Field(64, ge=1)
    mapping_layers: int = Field(4, ge=1)
    mapping_lr_mul: float = Field(0.01, gt=0)
    g_width: int = Field(16, ge=1, description="G channels at the finest resolution (x2 per halving)")
    g_max_width: int = Field(64, ge=1)
    d_width: int = Field(16, ge=1)
    d_max_width: int = Field(64, ge=1)
    mbstd_group: int = Field(4, ge=1)


def lazy_adam(cfg: TrainConfig, params, lr: float, every: int | None) -> torch.optim.Adam:
    """Adam for a net with a lazy regulariser every `every` steps (None = none): lr and betas x c, c = k/(k+1)."""
    c = every / (every + 1) if every else 1.0
    return adam(cfg, params, lr * c, betas=(cfg.betas[0] ** c, cfg.betas[1] ** c))


def stylegan_inputs(latent_dim: int, conditional: bool, image_shape) -> list[InputSpec]:
    """The exported graph's inputs, in order (see module doc)."""
    n = num_ws(tuple(image_shape))
    inputs = [latent_input(latent_dim)] + ([class_input()] if conditional else [])
    inputs += [
        InputSpec(name="truncation_psi", kind="scalar", dtype="float32", default=1.0, range=PSI_RANGE,
                  description="truncation in W towards w_avg (the class's average w when conditional): "
                  "1 = none, 0 = the average"),
        latent_input(latent_dim, "z_mix").model_copy(
            update={"description": "second latent for style mixing: style layers >= mix_layer take its w"}
        ),
        InputSpec(name="mix_layer", kind="scalar", dtype="float32", default=float(n), range=(0.0, float(n)),
                  description=f"style layers 0..mix_layer-1 come from z, the rest from z_mix; {n} = no mixing"),
    ]  # fmt: skip
    for k, r, _ in noise_shapes(tuple(image_shape)):
        inputs.append(
            InputSpec(name=f"noise_{r}", kind="noise", dtype="float32", shape=[k, r, r],
                      description=f"N(0, 1) noise maps of the {k} synthesis layer(s) at {r}x{r}")
        )  # fmt: skip
    return inputs


@register_family("stylegan")
class StyleGANFamily(Family):
    """G = mapping + modulated synthesis, D = residual; logistic loss, lazy R1, style mixing (module doc)."""

    diffaugments = True  # DiffAugment on everything D sees, R1's reals included (as ADA's run_D augments)
    settings_model = StyleGANSettings
    p: StyleGANSettings

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.arch = arch_settings(StyleGANArch, cfg, self.name)
        self.pl_mean = torch.zeros([])
        self.noise_shapes = noise_shapes(data.image_shape)

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.loss != "ns":
            raise UserError(
                f"loss: the stylegan family trains with the logistic 'ns' loss + R1, got {cfg.loss!r}"
            )
        cfg = resolve_adam_family(super().resolve(cfg), "stylegan", ARCH, StyleGANArch, 0.002, (0.0, 0.99))
        if cfg.family_params.get("aux_weight") and not cfg.conditional:
            raise UserError("family_params.aux_weight: the class head needs labels (conditional: true)")
        return cfg

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        a, d = self.arch, self.data
        g = StyleGenerator(self.cfg.latent_dim, d.num_classes, self.cfg.conditional, d.image_shape,
                           a.w_dim, a.mapping_layers, a.g_width, a.g_max_width, a.mapping_lr_mul)  # fmt: skip
        disc = StyleDiscriminator(d.num_classes, self.cfg.conditional, d.image_shape, a.d_width, a.d_max_width,
                                  a.mbstd_group, d.num_classes if self.p.aux_weight else 0)  # fmt: skip
        return {"g": g, "d": disc}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg, p = self.cfg, self.p
        return {
            "g": lazy_adam(cfg, self.nets["g"].parameters(), cfg.lr_g, p.pl_every if p.pl_weight else None),
            "d": lazy_adam(cfg, self.nets["d"].parameters(), cfg.lr_d, p.r1_every if p.r1_gamma else None),
        }

    # ---- phases -------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """Gmain, Greg (lazy, with a path-length weight), Dmain, Dreg (lazy, with an R1 weight), as ADA's."""
        p = self.p
        phases = [Phase("g", self.g_main, ema=True)]
        if p.pl_weight:
            phases.append(Phase("g_pl", self.g_path_length, every=p.pl_every))
        phases.append(Phase("d", self.d_main, repeats=self.cfg.n_critic))
        if p.r1_gamma:
            phases.append(Phase("d_r1", self.d_r1, every=p.r1_every))
        return phases

    def _noise(self, n: int, ctx: StepContext) -> list[torch.Tensor]:
        return [torch.randn(n, *s, generator=ctx.noise).to(ctx.device) for s in self.noise_shapes]

    def _latents(self, n: int, ctx: StepContext, labels: torch.Tensor | None = None):
        """(z, labels, noise maps, z_mix, cutoff) of one generator batch, all from the run's noise stream."""
        z = torch.randn(n, self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        if labels is None and self.cfg.conditional:
            labels = torch.randint(0, self.data.num_classes, (n,), generator=ctx.noise).to(ctx.device)
        noise = self._noise(n, ctx)
        z_mix = torch.randn(n, self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        cutoff = None
        if torch.rand([], generator=ctx.noise).item() < self.p.style_mixing:
            cutoff = int(torch.randint(1, num_ws(self.data.image_shape), [], generator=ctx.noise))
        return z, labels, noise, z_mix, cutoff

    def g_main(self, ctx: StepContext) -> dict[str, float]:
        cfg, G, D = self.cfg, ctx.nets["g"], ctx.nets["d"]
        n = cfg.batch_size
        z, labels, noise, z_mix, cutoff = self._latents(n, ctx)
        paired(cfg.diversity_weight, labels)
        with ctx.autocast():
            fake = G(z, labels, noise, z_mix, cutoff, w_avg_beta=self.p.w_avg_beta)
            seen, logs = self.diffaugment(fake, ctx), {}
            if self.p.aux_weight:
                out, classes = D(seen, labels, classes=True)
                logs["g_aux"] = aux_loss(classes, labels, self.p.aux_loss)
                loss = F.softplus(-out.float()).mean() + self.p.aux_weight * logs["g_aux"]
            else:
                loss = F.softplus(-D(seen, labels).float()).mean()
            loss = with_mode_seeking(loss, cfg.diversity_weight, fake, z)
        self.optimize("g", loss)
        return {"g_loss": loss.item(), **{k: v.item() for k, v in logs.items()}}

    def g_path_length(self, ctx: StepContext) -> dict[str, float]:
        p, G = self.p, ctx.nets["g"]
        n = max(1, self.cfg.batch_size // p.pl_batch_shrink)
        z, labels, noise, z_mix, cutoff = self._latents(n, ctx)
        fake, ws = G(z, labels, noise, z_mix, cutoff, return_ws=True)
        pl_noise = torch.randn(fake.shape, generator=ctx.noise).to(ctx.device) / math.sqrt(
            fake.shape[2] * fake.shape[3]
        )
        (grad,) = torch.autograd.grad((fake * pl_noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(), p.pl_decay)
        self.pl_mean = pl_mean.detach().cpu()
        penalty = (lengths - pl_mean).square().mean()
        self.optimize("g", penalty * p.pl_weight * p.pl_every)
        return {"pl_penalty": penalty.item()}

    def d_main(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, labels = ctx.next_batch()
        cond = labels if self.cfg.conditional else None
        n = real.shape[0]
        z, _, noise, z_mix, cutoff = self._latents(n, ctx, cond)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(z, cond, noise, z_mix, cutoff)
            both = torch.cat([cond, cond]) if cond is not None else None
            # one D call on [real; fake]: minibatch-std groups are consecutive, so never mix the halves
            seen, logs = self.diffaugment(torch.cat([real, fake.to(real.dtype)]), ctx), {}
            if self.p.aux_weight:  # the class head learns from the real images only (MHingeGAN)
                out, classes = D(seen, both, classes=True)
                logs["aux_real"] = aux_loss(classes[:n], cond, self.p.aux_loss)
            else:
                out = D(seen, both)
            out = out.float()
            loss = F.softplus(-out[:n]).mean() + F.softplus(out[n:]).mean()
            logs["d_loss"] = loss  # the adversarial part, as without the head
            if self.p.aux_weight:
                loss = loss + self.p.aux_weight * logs["aux_real"]
        self.optimize("d", loss)
        return {k: v.item() for k, v in logs.items()}

    def d_r1(self, ctx: StepContext) -> dict[str, float]:
        p, D = self.p, ctx.nets["d"]
        real, labels = ctx.next_batch()
        # the gradient through the augmentation, as ADA's run_D
        penalty = r1_penalty(
            lambda x, y: D(self.diffaugment(x, ctx), y), real, labels if self.cfg.conditional else None
        )
        self.optimize("d", penalty * (p.r1_gamma / 2) * p.r1_every)
        return {"r1_penalty": penalty.item()}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "pl_mean" in tensors:
            self.pl_mean = tensors["pl_mean"].clone()

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        return stylegan_inputs(self.cfg.latent_dim, self.cfg.conditional, self.data.image_shape)

    def inference_module(self, g: nn.Module) -> nn.Module:
        return StyleInference(g).eval()

    def card_variant(self) -> str:
        return "stylegan2"

    def card_arch_params(self) -> dict:
        return {**self.arch.model_dump(), "num_ws": num_ws(self.data.image_shape),
                "w_avg": "per class" if self.cfg.conditional else "global"}  # fmt: skip

    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        n_ws = float(num_ws(self.data.image_shape))

        def run(z, labels, gen):
            n = z.shape[0]
            noise = [torch.randn(n, *s, generator=gen).to(device) for s in self.noise_shapes]
            psi, mix = torch.ones(n, device=device), torch.full((n,), n_ws, device=device)
            return g(z, *([labels] if labels is not None else []), psi, z, mix, *noise)

        return rows_grid(run, self.cfg.latent_dim, self.data.num_classes, self.cfg.conditional, device)
