"""ACGAN (Odena et al. 2017): a discriminator with an auxiliary classifier head.

G is the class-conditional generator of the registered architecture (label embedding concatenated
to z). D is the unconditional discriminator whose trunk features feed two heads: the adversarial
logit and a linear classifier over the classes. D minimises its adversarial loss plus the class
cross-entropy on real images (their labels) and on fakes (the labels they were asked for); G
minimises its adversarial loss plus the class cross-entropy of its fakes.

The class loss is F.cross_entropy on the head's raw logits (it applies log-softmax itself): a
softmax layer before it, as in a well-known public implementation, squashes the gradients.
The aux loss on fakes rewards G for the most classifiable image of each class, which can collapse
diversity within a class. The mnist-acgan preset counters it with MHingeGAN's choices (Kavalerov et
al. 2021): a multi-class hinge instead of the cross-entropy, so G stops being pulled once its image's
class wins by a margin, and D's classifier trained on real images only (`class_loss: hinge`,
`d_fake_class: false`, `aux_weight` 0.5; measured in docs/families-log.md); the mode-seeking term
(`diversity_weight`) is the one in training/families/terms.py.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from gan_core.errors import UserError
from training.config import TrainConfig
from training.families.base import StepContext
from training.families.gan import AdversarialFamily
from training.families.params import FamilySettings
from training.families.terms import aux_loss, paired, with_mode_seeking
from training.nets.common import maybe_sn
from training.nets.heads import TwoHeadDiscriminator
from training.registry import get_arch, register_family


class ACGANSettings(FamilySettings):
    """family_params of the acgan family (defaults: the paper's)."""

    aux_weight: float = Field(1.0, ge=0, description="weight of the class loss in both players' objectives")
    aux_sn: bool = Field(
        False, description="spectral norm on the classifier head too (the trunk follows spectral_norm)"
    )
    projection: bool = Field(
        False,
        description="the adversarial head also takes the label by projection (Miyato & Koyama 2018), as the "
        "default preset's D does; the class head is ACGAN's either way",
    )
    d_fake_class: bool = Field(
        True,
        description="D's class loss on fakes too (the paper's); off, D's classifier learns from real images "
        "only and G is still pulled towards images it classifies as the asked class",
    )
    class_loss: Literal["ce", "hinge"] = Field(
        "ce",
        description="'ce': cross-entropy (the paper's); 'hinge': the multi-class hinge of MHingeGAN "
        "(Kavalerov et al. 2021), which stops pulling a fake once its class wins by a margin of 1 instead "
        "of rewarding ever more classifiable (less varied) images of the class",
    )


@register_family("acgan")
class ACGANFamily(AdversarialFamily):
    """Conditional G, D with an auxiliary classifier (see module doc); optimisers, phases, card inputs
    and grid as the classic family's."""

    diffaugments = False  # its own D / G steps do not apply DiffAugment (yet)
    settings_model = ACGANSettings
    p: ACGANSettings

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if not cfg.conditional:
            raise UserError("acgan generates the classes it is asked for: conditional must be true")
        return super().resolve(cfg)

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        cfg, shape, k = self.cfg, tuple(self.data.image_shape), self.data.num_classes
        arch = get_arch(cfg.arch)
        g, _ = arch(shape, k, True, cfg.latent_dim, sn=False, **cfg.arch_params)
        proj = self.p.projection
        _, d = arch(
            shape, k, proj, cfg.latent_dim, cond_mode="projection", sn=cfg.spectral_norm, **cfg.arch_params
        )
        sn = self.p.aux_sn
        return {"g": g, "d": TwoHeadDiscriminator(d, lambda feat: maybe_sn(nn.Linear(feat, k), sn))}

    # ---- phases: the classic family's D and G phases, each with the class loss ----------------
    def d_step(self, ctx: StepContext) -> dict[str, float]:
        cfg, G, D = self.cfg, ctx.nets["g"], ctx.nets["d"]
        real, labels = ctx.next_batch()
        n, w = real.shape[0], self.p.aux_weight
        z = torch.randn(n, cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        fake_labels = torch.randint(0, self.data.num_classes, (n,), generator=ctx.noise).to(ctx.device)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(z, fake_labels)
            both = torch.cat([labels, fake_labels]) if self.p.projection else None
            out, cls = D(torch.cat([real, fake.to(real.dtype)]), both)
            out = out.float()
            adv = self.loss.d_loss(out[:n], out[n:])
            pen = self.penalty(ctx, lambda x, y: D(x, y)[0], real, fake.float(), both)
            kind = self.p.class_loss
            real_ce, fake_ce = aux_loss(cls[:n], labels, kind), aux_loss(cls[n:], fake_labels, kind)
            class_loss = real_ce + fake_ce if self.p.d_fake_class else real_ce
            loss = adv + w * class_loss + (pen if pen is not None else 0.0)
        self.optimize("d", loss)
        self.loss.after_d_step(self.nets["d"].d)
        return {"d_loss": adv.item(), "aux_real": real_ce.item(), "aux_fake": fake_ce.item()}

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        cfg, G, D = self.cfg, ctx.nets["g"], ctx.nets["d"]
        n = cfg.batch_size
        z = torch.randn(n, cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        labels = torch.randint(0, self.data.num_classes, (n,), generator=ctx.noise).to(ctx.device)
        paired(cfg.diversity_weight, labels)
        with ctx.autocast():
            fake = G(z, labels)
            out, cls = D(fake, labels if self.p.projection else None)
            adv = self.loss.g_loss(out.float())
            ce = aux_loss(cls, labels, self.p.class_loss)
            loss = with_mode_seeking(adv + self.p.aux_weight * ce, cfg.diversity_weight, fake, z)
        self.optimize("g", loss)
        return {"g_loss": adv.item(), "g_aux": ce.item()}

    # ---- inference ----------------------------------------------------------------------------
    def card_variant(self) -> str:
        return f"acgan-{self.cfg.loss}"

    def card_arch_params(self) -> dict:
        cfg = self.cfg
        return {**cfg.arch_params, "spectral_norm": cfg.spectral_norm, **self.p.model_dump()}
