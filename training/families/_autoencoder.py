"""What EBGAN and BEGAN share: a generator against an autoencoder discriminator.

Not a family itself (the leading underscore keeps training.registry from treating it as one): the
two families differ in their energy (squared vs absolute reconstruction error) and in how the
discriminator is pushed (a margin vs the equilibrium controller k_t), and implement only that.
The generator is training/nets/dcgan.py's (so exports get export/phase_generator.py's fast form),
with arch_params `generator: mlp` the classic digit GAN's MLP (training/nets/mlp.py), or with
`generator: decoder` BEGAN's own: the autoencoder's decoder shape, no BatchNorm; the
discriminator is training/nets/autoencoder.py's strided-conv autoencoder or, with `autoencoder: mlp`,
its fully connected one (EBGAN's MNIST experiments are fully connected in both networks, and on 2 CPU
cores the MLPs train ~6x more steps per minute). Labels are optional (`conditional`).
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from training.config import TrainConfig
from training.families.base import StepContext
from training.families.common import arch_settings, resolve_adam_family
from training.families.gan import AdversarialFamily
from training.nets.autoencoder import AutoencoderDiscriminator, DecoderGenerator, MLPAutoencoderDiscriminator
from training.nets.dcgan import DCGANGenerator
from training.nets.mlp import MLPGenerator


class AutoencoderArch(BaseModel):
    """arch_params of the autoencoder-discriminator families."""

    model_config = ConfigDict(extra="forbid")

    generator: Literal["dcgan", "mlp", "decoder"] = Field(
        "dcgan",
        description="G: the DCGAN, the classic digit GAN's MLP (EBGAN's MNIST setup is fully connected), or "
        "the autoencoder's decoder shape without BatchNorm (BEGAN's paper)",
    )
    g_width: int = Field(32, ge=1, description="DCGAN / decoder generator width")
    g_hidden: tuple[int, ...] = Field(
        (256, 512, 1024), min_length=1, description="the MLP generator's hidden widths"
    )
    autoencoder: Literal["conv", "mlp"] = Field(
        "conv", description="D: strided-conv autoencoder or a fully connected one"
    )
    d_width: int = Field(32, ge=1, description="channels of the autoencoder's first conv (x2 per halving)")
    d_hidden: int = Field(256, ge=1, description="the fully connected autoencoder's hidden width")
    code_dim: int = Field(64, ge=1, description="the encoder's code (EBGAN's pulling-away term works on it)")
    embed_dim: int = Field(32, ge=1, description="G's label embedding when conditional")
    d_activation: Literal["lrelu", "elu", "relu"] | None = Field(
        None,
        description="the autoencoder's (and decoder-shaped G's) activation; None: the family's (EBGAN lrelu, BEGAN elu)",
    )


def per_sample(err: torch.Tensor) -> torch.Tensor:
    """Mean over every non-batch dim: one reconstruction error per image."""
    return err.flatten(1).mean(1)


class AutoencoderGAN(AdversarialFamily):
    """Base of the autoencoder-discriminator families: nets, optimiser defaults, card fields."""

    diffaugments = False  # its own D / G steps do not apply DiffAugment (yet)
    lazy_penalty = False  # its own loss has no gradient penalty

    activation: ClassVar[str] = "lrelu"
    lr: ClassVar[float] = 2e-4  # Adam, G and D, unless the run sets lr_g / lr_d

    def __init__(self, cfg: TrainConfig, data):
        super().__init__(cfg, data)
        self.arch = arch_settings(AutoencoderArch, cfg, self.name)
        self.activation = self.arch.d_activation or type(self).activation

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        return resolve_adam_family(
            cls.with_settings(cfg), cls.name, "dcgan", AutoencoderArch, cls.lr, (0.5, 0.999)
        )

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        cfg, data, a = self.cfg, self.data, self.arch
        if a.generator == "mlp":
            g_net, g_size = MLPGenerator, a.g_hidden
        elif a.generator == "decoder":
            g_net, g_size = partial(DecoderGenerator, activation=self.activation), a.g_width
        else:
            g_net, g_size = DCGANGenerator, a.g_width
        d_net, d_size = (
            (MLPAutoencoderDiscriminator, a.d_hidden)
            if a.autoencoder == "mlp"
            else (AutoencoderDiscriminator, a.d_width)
        )
        g = g_net(cfg.latent_dim, data.num_classes, cfg.conditional, data.image_shape, g_size, a.embed_dim)
        d = d_net(data.image_shape, data.num_classes, cfg.conditional, d_size, a.code_dim, self.activation)
        return {"g": g, "d": d}

    # ---- losses: the energy, and D's scores of the phases' images -----------------------------
    @abstractmethod
    def error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-image reconstruction error (the family's energy)."""

    def scored(self, ctx: StepContext, x: torch.Tensor, labels: torch.Tensor | None):
        """(per-image error of x, D's codes of x) through the discriminator, in float32."""
        recon, code = ctx.nets["d"](x, labels)
        return self.error(recon.float(), x.float()), code.float()

    def d_errors(
        self, ctx: StepContext, fakes: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image errors of the next real batch and of as many fresh fakes (or of `fakes`: images,
        latents, labels or None), in one D pass; then the fakes' latents and D's codes of the fakes."""
        if fakes is None:
            real, cond, z = self.d_inputs(ctx)
            with torch.no_grad():
                fake = ctx.nets["g"](z, cond)
            fake_cond = cond
        else:
            real, labels = ctx.next_batch()
            cond = labels if self.cfg.conditional else None
            fake, z, fake_cond = fakes
        both = torch.cat([cond, fake_cond]) if cond is not None else None
        err, code = self.scored(ctx, torch.cat([real, fake.detach().to(real.dtype)]), both)
        n = real.shape[0]
        return err[:n], err[n:], z, code[n:]

    def g_scored(self, ctx: StepContext):
        """(fakes, their latents, their per-image errors, their codes) of a G step."""
        z, labels = self.g_inputs(ctx)
        fake = ctx.nets["g"](z, labels)
        err, code = self.scored(ctx, fake, labels)
        return fake, z, err, code

    # ---- inference ----------------------------------------------------------------------------
    def card_variant(self) -> str:
        return self.name

    def card_arch_params(self) -> dict:
        return {**self.arch.model_dump(), "d": "autoencoder", "d_activation": self.activation}  # resolved

    def card_fields(self) -> dict:
        """The card's `arch` names the generator's network (the config's is the family default 'dcgan')."""
        return {"arch": self.arch.generator}
