"""Paired image-to-image repair and super-resolution (pix2pix, Isola et al. 2017; SRGAN, Ledig et al. 2017).

One dataset of clean images; each batch is damaged on the fly by the run's declared corruption
(family_params.corruption, training/corruption.py: down:4, mask:box, noise:0.2+blur:1, old, ...), with
draws from the run's checkpointed noise stream, so pairs repeat exactly and resume bit-identically.
G maps the damaged image (plus the mask channel when filling in) back to the clean one:

- restore (no down part): pix2pix's U-Net (arch 'unet-patchgan');
- upscale (down:N): SRGAN's residual generator with pixel-shuffle upsampling (arch 'srresnet-patchgan').

D is a PatchGAN conditioned on the input (pix2pix's conditional D: (condition, image) on the channel
axis; the low-resolution input is nearest-upsampled to the output's size). Losses, as pix2pix:
D: 0.5 x (BCE(D(c, real), 1) + BCE(D(c, G(c)), 0)) ('ns', the paper's vanilla GAN; 'lsgan' squares);
G: adv_weight x BCE(D(c, G(c)), 1) + l1_weight x |G(c) - real|_1 (lambda_L1 100), plus, for SRGAN's
content loss, feature_weight x the squared distance of the dataset evaluator's penultimate features
(training/evaluation/classifier.py; no ImageNet VGG can be downloaded, and the evaluator is the
dataset's own feature space). adv_weight 0 is the L1-only generator the adversarial term is compared
with (its D is built but never trained). Filling in alone (a mask part only) composites: the output
keeps the known pixels and G paints the lost ones. Adam 2e-4 (0.5, 0.999), as the paper.

The exported graph takes uint8 NHWC images (and a uint8 mask [N, H, W, 1] for filling in) and returns
uint8 images; it is fully convolutional, so the card says `repair.any_size` and the export keeps
height and width dynamic (parity checked at several sizes).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gan_core.card import InputSpec, Repair, mask_input
from gan_core.errors import UserError
from gan_core.imaging import float_to_uint8, uniform_cells
from training.config import TrainConfig
from training.corruption import BOX, Corruption, parse
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.common import GRID_SEED, adam, arch_settings
from training.families.params import FamilySettings
from training.nets.cyclegan import PatchDiscriminator
from training.nets.pix2pix import SRResNet, UNetGenerator, unet_depth
from training.registry import register_family

ARCHS = {"restore": "unet-patchgan", "upscale": "srresnet-patchgan"}


class Pix2PixSettings(FamilySettings):
    """family_params of the pix2pix family (defaults: the paper's)."""

    corruption: str = Field(
        "noise:0.2+blur:1", description="the damage pairs are made with (training/corruption.py)"
    )
    l1_weight: float = Field(100.0, ge=0, description="weight of |G(c) - real|_1 (pix2pix's lambda_L1)")
    adv_weight: float = Field(
        1.0, ge=0, description="weight of G's adversarial term (0 = the L1-only generator)"
    )
    feature_weight: float = Field(
        0.0, ge=0, description="weight of the evaluator-feature (content) loss, SRGAN's perceptual term"
    )
    feature_evaluator: str = Field(
        "", description="evaluator of the feature loss (name or path); '' = the one bound to the data"
    )


class Pix2PixArch(BaseModel):
    """arch_params of the pix2pix networks."""

    model_config = ConfigDict(extra="forbid")

    g_width: int = Field(64, ge=1, description="G's first conv width")
    g_blocks: int = Field(
        2, ge=0, description="residual blocks: the U-Net's bottleneck, or SRGAN's trunk (16)"
    )
    g_depth: int | None = Field(
        None, ge=1, le=6, description="U-Net downsamplings (None = what the image allows)"
    )
    d_width: int = Field(64, ge=1, description="the PatchGAN's first conv width")
    d_layers: int = Field(
        2, ge=1, description="the PatchGAN's stride-2 layers (3 = the paper's 70x70 on 256 px)"
    )
    d_sn: bool = Field(
        False, description="spectral norm on the PatchGAN's convs, instead of its instance norm"
    )


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _lsq(out: torch.Tensor, target: float) -> torch.Tensor:
    return (out - target).pow(2).mean()


class RepairModule(nn.Module):
    """The exported module: uint8 [N, h, w, C] image (+ uint8 [N, H, W, 1] mask) -> [-1, 1] NCHW images.

    The mask's lost pixels are blanked the way training blanked them, so whatever the damaged image
    holds there does not matter; filling in alone pastes the known pixels back."""

    def __init__(self, g: nn.Module, mask: bool, composite: bool):
        super().__init__()
        self.g, self.mask, self.composite = g, mask, composite

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if not self.mask:
            return self.g(x).clamp(-1, 1)  # the SR generator's residual output is not bounded
        m = (mask.permute(0, 3, 1, 2) > 127).float()
        x = x * (1 - m)
        out = self.g(torch.cat([x, 2 * m - 1], 1))
        return out * m + x * (1 - m) if self.composite else out


@register_family("pix2pix")
class Pix2PixFamily(Family):
    """U-Net or SR-ResNet G, conditional PatchGAN D, L1 + adversarial (+ feature) losses (module doc)."""

    settings_model = Pix2PixSettings
    takes_images = True
    p: Pix2PixSettings

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.corruption: Corruption = parse(self.p.corruption)
        self.arch = arch_settings(Pix2PixArch, cfg, self.name)
        c, h, w = data.image_shape
        s = self.corruption.scale
        if h % s or w % s:
            raise UserError(
                f"{self.p.corruption}: down:{s} needs image sides divisible by {s}, the data's are {h}x{w}"
            )
        self.depth = self.arch.g_depth or unet_depth(h, w)
        if self.corruption.task == "restore" and (self.depth < 1 or h % 2**self.depth or w % 2**self.depth):
            raise UserError(
                f"image_shape: the U-Net needs sides divisible by 2^g_depth (at least 2), the data's are {h}x{w}"
            )
        self._last: tuple[torch.Tensor, ...] | None = None
        self.features: nn.Module | None = None

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        cfg = super().resolve(cfg)
        corruption = parse(cfg.family_params["corruption"])
        arch = ARCHS[corruption.task]
        if cfg.arch not in (arch, "dcgan"):  # 'dcgan' is TrainConfig's default: not chosen by the user
            raise UserError(
                f"arch: corruption {str(corruption)!r} ({corruption.task}) trains {arch!r}, got {cfg.arch!r}"
            )
        if cfg.loss not in ("ns", "lsgan"):
            raise UserError(
                f"loss: the pix2pix family trains with ns (the paper's) or lsgan, got {cfg.loss!r}"
            )
        if cfg.conditional:
            raise UserError(
                "conditional: the pix2pix family is conditioned on its input image, not on labels"
            )
        return cfg.model_copy(
            update={
                "arch": arch, "n_critic": 1, "spectral_norm": False,
                "family_params": {**cfg.family_params, "corruption": str(corruption)},
                "arch_params": arch_settings(Pix2PixArch, cfg, cls.name).model_dump(),
                "optimizer": cfg.optimizer or "adam", "lr_g": cfg.lr_g or 2e-4, "lr_d": cfg.lr_d or 2e-4,
                "betas": cfg.betas or (0.5, 0.999),
            }
        )  # fmt: skip

    # ---- networks -----------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.data.image_shape
        s = self.corruption.scale
        return c, h // s, w // s

    def build_nets(self) -> dict[str, nn.Module]:
        c, h, w = self.data.image_shape
        a = self.arch
        cond = c + (1 if self.corruption.mask else 0)
        if self.corruption.task == "upscale":
            g: nn.Module = SRResNet(c, self.corruption.scale, a.g_width, a.g_blocks)
        else:
            g = UNetGenerator(cond, c, self.depth, a.g_width, a.g_blocks)
        return {"g": g, "d": PatchDiscriminator((cond + c, h, w), a.d_width, a.d_layers, a.d_sn)}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": adam(self.cfg, self.nets["g"].parameters(), self.cfg.lr_g),
                "d": adam(self.cfg, self.nets["d"].parameters(), self.cfg.lr_d)}  # fmt: skip

    def build(self, device: torch.device | str = "cpu") -> None:
        super().build(device)
        if self.p.feature_weight > 0:
            self.features = self._feature_net().to(device)

    def _feature_net(self) -> nn.Module:
        """The evaluator's penultimate features, frozen: the content loss's feature space."""
        from training.evaluation.classifier import load_evaluator
        from training.evaluation.store import bound_evaluator

        name = self.p.feature_evaluator
        ev = load_evaluator(name) if name else bound_evaluator(self.data.dataset.get("fingerprint"))
        if ev is None:
            raise UserError(
                "family_params.feature_weight: the feature loss needs an evaluator bound to the data "
                "(gan train-evaluator --data DIR) or family_params.feature_evaluator; or set feature_weight 0"
            )
        if tuple(ev.card.image_shape) != tuple(self.data.image_shape):
            raise UserError(
                f"family_params.feature_evaluator: {ev.id!r} measures {tuple(ev.card.image_shape)} images, "
                f"the data's are {tuple(self.data.image_shape)}"
            )
        net = copy.deepcopy(nn.Sequential(ev.net.blocks, ev.net.features)).eval()
        net.requires_grad_(False)
        return net

    # ---- pairs and phases ---------------------------------------------------------------------
    def condition(
        self, damaged: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(G's input, D's condition at the output's size) of a damaged batch."""
        g_in = damaged if mask is None else torch.cat([damaged, 2 * mask - 1], 1)
        s = self.corruption.scale
        return g_in, (g_in if s == 1 else F.interpolate(g_in, scale_factor=s, mode="nearest"))

    def generate(self, g: nn.Module, g_in: torch.Tensor, damaged: torch.Tensor, mask: torch.Tensor | None):
        out = g(g_in)
        if self.corruption.only_mask:
            out = out * mask + damaged * (1 - mask)
        return out

    def phases(self) -> list[Phase]:
        """G, then (unless adv_weight is 0) D on G's fakes of the same step, as pix2pix's optimize_parameters."""
        g = Phase("g", self.g_step, ema=True)
        return [g] if self.p.adv_weight == 0 else [g, Phase("d", self.d_step)]

    def _gan(self, out: torch.Tensor, target: float) -> torch.Tensor:
        return (_lsq if self.cfg.loss == "lsgan" else _bce)(out.float(), target)

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, _ = ctx.next_batch()
        damaged, mask = self.corruption.apply(real, ctx.noise)
        g_in, cond = self.condition(damaged, mask)
        adv_on = self.p.adv_weight > 0
        with ctx.autocast():
            fake = self.generate(G, g_in, damaged, mask)
            l1 = F.l1_loss(fake.float(), real)
            loss = self.p.l1_weight * l1
            logs = {"l1": l1.item()}
            if adv_on:
                adv = self._gan(D(torch.cat([cond, fake], 1)), 1.0)
                loss = loss + self.p.adv_weight * adv
                logs["g_adv"] = adv.item()
            if self.features is not None:
                feat = F.mse_loss(self.features(fake.float()), self.features(real))
                loss = loss + self.p.feature_weight * feat
                logs["feature"] = feat.item()
        self.optimize("g", loss)  # D's weight gradients are not computed (step_optimizers)
        self._last = (cond, real, fake.detach()) if adv_on else None
        return {"g_loss": loss.item(), **logs}

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        if self._last is None:
            raise RuntimeError("pix2pix: the discriminator phase runs after the generator phase of its step")
        D = ctx.nets["d"]
        cond, real, fake = self._last
        self._last = None
        with ctx.autocast():
            loss = 0.5 * (
                self._gan(D(torch.cat([cond, real], 1)), 1.0) + self._gan(D(torch.cat([cond, fake], 1)), 0.0)
            )
        self.optimize("d", loss)
        return {"d_loss": loss.item()}

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        c, h, w = self.input_shape
        image = InputSpec(name="image", kind="image", dtype="uint8", shape=[h, w, c],
                          description=f"uint8 damaged pixels [H, W, C] ({self.corruption})")  # fmt: skip
        _, H, W = self.data.image_shape
        return [image] + ([mask_input(H, W)] if self.corruption.mask else [])

    def inference_module(self, g: nn.Module) -> nn.Module:
        return RepairModule(g, self.corruption.mask is not None, self.corruption.only_mask).eval()

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        c, h, w = self.input_shape
        return [torch.randint(0, 256, (n, h, w, c), generator=gen, dtype=torch.uint8)]

    def damaged_preview(self, k: int = 10) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(damaged uint8 NHWC, mask uint8 NHW1 or None, clean uint8 NHWC) of the data's preview images,
        damaged with the fixed grid seed."""
        clean = self.data.preview[:k]
        x = torch.from_numpy(clean).float() / 127.5 - 1
        damaged, mask = self.corruption.apply(x, torch.Generator().manual_seed(GRID_SEED))
        m = None if mask is None else (mask.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
        return float_to_uint8(damaged.numpy()), m, clean.transpose(0, 2, 3, 1)

    @torch.no_grad()
    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        """Rows: damaged input (nearest-upsampled) | G's output | the clean image, for fixed images."""
        damaged, mask, clean = self.damaged_preview()
        feeds = [torch.from_numpy(damaged).to(device)] + (
            [] if mask is None else [torch.from_numpy(mask).to(device)]
        )
        out = float_to_uint8(g(*feeds).float().cpu().numpy())
        s = self.corruption.scale
        shown = damaged.repeat(s, axis=1).repeat(s, axis=2)
        return uniform_cells([shown, out, clean]), len(clean)

    def card_variant(self) -> str:
        return "pix2pix-l1" if self.p.adv_weight == 0 else f"pix2pix-{self.cfg.loss}"

    def card_arch_params(self) -> dict:
        return {**self.arch.model_dump(), "g_depth": self.depth, **self.p.model_dump()}

    def card_fields(self) -> dict[str, Any]:
        c = self.corruption
        multiple = 1 if c.task == "upscale" else 2**self.depth
        mask: Literal["box", "random"] | None = c.mask  # type: ignore[assignment]
        repair = Repair(
            task=c.task, corruption=str(c), scale=c.scale, mask=mask, mask_box=BOX, multiple=multiple
        )
        return {"repair": repair}
