"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between two datasets.

Two generators, G: A -> B and F: B -> A (training/nets/cyclegan: ResNet generators), and two PatchGAN
discriminators, D_A (real A vs F(b)) and D_B (real B vs G(a)). Per step, as in the paper's code:

- generator phase: least-squares adversarial terms (D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2, plus the
  cycle terms lambda_a x |F(G(a)) - a|_1 + lambda_b x |G(F(b)) - b|_1, plus the identity terms
  lambda_identity x (lambda_b x |G(b) - b|_1 + lambda_a x |F(a) - a|_1) (only when both domains have
  the same shape); one backward through both generators, both stepped;
- discriminator phase: 0.5 x ((D(real) - 1)^2 + D(fake)^2) for each D, the fakes drawn through a
  replay buffer of the last `pool_size` generated images per discriminator (Shrivastava et al. 2017).

Paper defaults: Adam 2e-4 (0.5, 0.999), lambda_a = lambda_b = 10, lambda_identity 0.5, pool 50, learning rates
constant for the first half of the run, then linear to 0 (TrainConfig.lr_decay_from 0.5); batch 1,
generator width 64 with 9 residual blocks, PatchGAN width 64 with 3 layers. Both generators keep an
EMA copy ('g_ema', 'f_ema'); export writes one ONNX file per direction ('a2b' = G, 'b2a' = F) whose
graph takes uint8 [N, H, W, C] images and returns uint8 images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gan_core.card import DIRECTIONS, Domain, InputSpec, ModelCard, Translation, image_input
from gan_core.errors import UserError
from gan_core.imaging import float_to_uint8, uniform_cells
from training.config import TrainConfig
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.common import adam, arch_settings
from training.families.params import FamilySettings
from training.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from training.registry import register_family

ARCH = "resnet-patchgan"
NETS = {"a2b": "g", "b2a": "f"}


class CycleGANSettings(FamilySettings):
    """family_params of the cyclegan family (defaults: the paper's)."""

    lambda_a: float = Field(
        10.0, ge=0, description="weight of the cycle that starts in A (the paper code's --lambda_A)"
    )
    lambda_b: float = Field(10.0, ge=0, description="weight of the cycle that starts in B (--lambda_B)")
    lambda_identity: float = Field(
        0.5, ge=0, description="weight of the identity terms, relative to the cycles' (0 = off)"
    )
    pool_size: int = Field(50, ge=0, description="fakes each replay buffer keeps (0 = no buffer)")


class CycleGANArch(BaseModel):
    """arch_params of the cyclegan networks (defaults: the paper's)."""

    model_config = ConfigDict(extra="forbid")

    g_width: int = Field(64, ge=1, description="the ResNet generators' first conv width")
    g_blocks: int = Field(9, ge=0, description="the generators' residual blocks")
    d_width: int = Field(64, ge=1, description="the PatchGANs' first conv width")
    d_layers: int = Field(3, ge=1, description="the PatchGANs' stride-2 layers")


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator: 0.5 x (mean (D(real) - 1)^2 + mean D(fake)^2) (the paper halves D's objective)."""
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    """Generator: mean (D(G(x)) - 1)^2."""
    return (fake - 1).pow(2).mean()


def cycle_loss(x: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """|F(G(x)) - x|_1, the mean absolute error on the [-1, 1] pixels."""
    return F.l1_loss(reconstructed, x)


def identity_loss(x: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """|G(y) - y|_1 for y already in G's target domain: keeps colours and content a generator needn't change."""
    return F.l1_loss(mapped, x)


class ReplayBuffer:
    """The last `size` generated images a discriminator saw; each new fake is, with probability 1/2,
    swapped for a stored one (which it replaces), once the buffer is full. Until then fakes pass
    through and are stored. Random draws come from the caller's generator, so runs repeat exactly."""

    def __init__(self, size: int, shape: tuple[int, int, int]):
        self.size = size
        self.images = torch.zeros(size, *shape)
        self.count = 0

    def query(self, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return fake
        fake = fake.detach()
        if self.images.device != fake.device or self.images.dtype != fake.dtype:
            self.images = self.images.to(fake.device, fake.dtype)
        coins = torch.rand(len(fake), generator=gen).tolist()
        slots = torch.randint(0, self.size, (len(fake),), generator=gen).tolist()
        out = []
        for x, coin, slot in zip(fake, coins, slots, strict=True):
            if self.count < self.size:
                self.images[self.count] = x
                self.count += 1
                out.append(x)
            elif coin > 0.5:
                out.append(self.images[slot].clone())
                self.images[slot] = x
            else:
                out.append(x)
        return torch.stack(out)

    def state(self) -> dict[str, torch.Tensor]:
        return {"images": self.images.detach().cpu().float(), "count": torch.tensor([self.count])}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.images = state["images"].clone()
        self.count = int(state["count"][0])


class ImageTranslator(nn.Module):
    """The exported module: uint8 [N, H, W, C] pixels in, the generator's [-1, 1] NCHW images out."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.generator(x)


def domain(name: str, data: DataInfo) -> Domain:
    return Domain(
        name=name, image_shape=data.image_shape, class_names=list(data.class_names), dataset=data.dataset
    )


def domain_data(d: Domain) -> DataInfo:
    return DataInfo(tuple(d.image_shape), len(d.class_names), tuple(d.class_names), dataset=d.dataset)


@torch.no_grad()
def translation_rows(to_b, to_a, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Grid rows a | G(a) | F(G(a)) and b | F(b) | G(F(b)) (source | translated | reconstructed) from
    translators uint8 NHWC -> uint8 NHWC."""
    fb, fa = to_b(a), to_a(b)
    return uniform_cells([a, fb, to_a(fb), b, fa, to_b(fa)]), len(a)


@register_family("cyclegan")
class CycleGANFamily(Family):
    """Two generators, two PatchGANs, LSGAN + cycle + identity losses, replay buffers (module doc)."""

    generators = ("g", "f")
    needs_data_b = True
    takes_images = True
    settings_model = CycleGANSettings
    p: CycleGANSettings

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        if data.b is None:
            raise UserError("data_b: the cyclegan family needs a second dataset (domain B)")
        self.arch = arch_settings(CycleGANArch, cfg, self.name)
        self.same_shape = tuple(data.image_shape) == tuple(data.b.image_shape)
        size = self.p.pool_size
        self.pools = {"a": ReplayBuffer(size, data.image_shape), "b": ReplayBuffer(size, data.b.image_shape)}
        self._last: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.arch not in (ARCH, "dcgan"):  # 'dcgan' is TrainConfig's default: not chosen by the user
            raise UserError(f"arch: the cyclegan family uses {ARCH!r}, got {cfg.arch!r}")
        if cfg.loss not in ("lsgan", "ns"):  # 'ns' is TrainConfig's default
            raise UserError(
                f"loss: the cyclegan family uses the least-squares loss (lsgan), got {cfg.loss!r}"
            )
        cfg = super().resolve(cfg)
        return cfg.model_copy(
            update={
                "arch": ARCH, "loss": "lsgan", "conditional": False, "spectral_norm": False, "n_critic": 1,
                "arch_params": arch_settings(CycleGANArch, cfg, cls.name).model_dump(),
                "optimizer": cfg.optimizer or "adam", "lr_g": cfg.lr_g or 2e-4, "lr_d": cfg.lr_d or 2e-4,
                "betas": cfg.betas or (0.5, 0.999),
                "lr_decay_from": 0.5 if cfg.lr_decay_from is None else cfg.lr_decay_from,
            }
        )  # fmt: skip

    @classmethod
    def data_from_card(cls, card: ModelCard) -> DataInfo:
        t = card.translation
        if t is None:
            raise UserError(
                f"{card.name}: a cyclegan checkpoint's card must describe its domains (translation)"
            )
        a, b = (t.source, t.target) if t.direction == "a2b" else (t.target, t.source)
        return dataclasses.replace(domain_data(a), b=domain_data(b))

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        a, b, p = self.data.image_shape, self.data.b.image_shape, self.arch
        gen = dict(width=p.g_width, blocks=p.g_blocks)
        disc = dict(width=p.d_width, layers=p.d_layers)
        return {
            "g": ResnetGenerator(a, b, **gen),
            "f": ResnetGenerator(b, a, **gen),
            "d_a": PatchDiscriminator(a, **disc),
            "d_b": PatchDiscriminator(b, **disc),
        }

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        lr = {"g": cfg.lr_g, "f": cfg.lr_g, "d_a": cfg.lr_d, "d_b": cfg.lr_d}
        return {k: adam(cfg, self.nets[k].parameters(), lr[k]) for k in lr}

    # ---- phases -------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """Both generators, then both discriminators on the generator phase's fakes (through the buffers)."""
        return [Phase("g", self.g_step, ema=True), Phase("d", self.d_step)]

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        G, Fn, DA, DB = (ctx.nets[k] for k in ("g", "f", "d_a", "d_b"))
        a, _ = ctx.next_batch()
        b, _ = ctx.next_batch_b()
        lam_a, lam_b, lam_idt = self.p.lambda_a, self.p.lambda_b, self.p.lambda_identity
        with ctx.autocast():
            fake_b, fake_a = G(a), Fn(b)
            adv = lsgan_g(DB(fake_b).float()) + lsgan_g(DA(fake_a).float())
            cyc_a, cyc_b = cycle_loss(a, Fn(fake_b).float()), cycle_loss(b, G(fake_a).float())
            loss = adv + lam_a * cyc_a + lam_b * cyc_b
            idt = torch.zeros(())
            if lam_idt > 0 and self.same_shape:
                idt_b, idt_a = identity_loss(b, G(b).float()), identity_loss(a, Fn(a).float())
                loss = loss + lam_idt * (lam_b * idt_b + lam_a * idt_a)
                idt = idt_a + idt_b
        self.step_optimizers(("g", "f"), loss)  # the Ds' weight gradients are not computed
        self._last = (a, b, fake_a.detach(), fake_b.detach())
        return {"g_loss": loss.item(), "g_adv": adv.item(), "cycle_a": cyc_a.item(), "cycle_b": cyc_b.item(),
                "identity": idt.item()}  # fmt: skip

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        if self._last is None:
            raise RuntimeError("cyclegan: the discriminator phase runs after the generator phase of its step")
        DA, DB = ctx.nets["d_a"], ctx.nets["d_b"]
        a, b, fake_a, fake_b = self._last
        self._last = None
        fake_a = self.pools["a"].query(fake_a, ctx.noise)
        fake_b = self.pools["b"].query(fake_b, ctx.noise)
        with ctx.autocast():
            loss_a = lsgan_d(DA(a).float(), DA(fake_a.to(a.dtype)).float())
            loss_b = lsgan_d(DB(b).float(), DB(fake_b.to(b.dtype)).float())
        self.step_optimizers(("d_a", "d_b"), loss_a + loss_b)
        return {"d_loss": (loss_a + loss_b).item(), "d_a": loss_a.item(), "d_b": loss_b.item()}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {f"pool_{d}.{k}": v for d, pool in self.pools.items() for k, v in pool.state().items()}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for d, pool in self.pools.items():
            pool.load({k: tensors[f"pool_{d}.{k}"] for k in ("images", "count")})

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        return [image_input(self.data.image_shape)]

    def inference_module(self, g: nn.Module) -> nn.Module:
        return ImageTranslator(g).eval()

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        c, h, w = self.data.image_shape
        return [torch.randint(0, 256, (n, h, w, c), generator=gen, dtype=torch.uint8)]

    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        raise NotImplementedError("cyclegan grids need both generators (grid_nets)")

    def grid_nets(self, nets: dict[str, nn.Module], device: torch.device) -> tuple[np.ndarray, int]:
        """Rows: a | G(a) | F(G(a)) and b | F(b) | G(F(b)) for fixed images of each domain."""

        def run(net):
            def translate(x: np.ndarray) -> np.ndarray:
                out = net(torch.from_numpy(np.ascontiguousarray(x)).to(device))
                return float_to_uint8(out.float().cpu().numpy())

            return translate

        a = self.data.preview.transpose(0, 2, 3, 1)
        b = self.data.b.preview.transpose(0, 2, 3, 1)
        return translation_rows(run(nets["g"]), run(nets["f"]), a, b)

    def card_variant(self) -> str:
        return "cyclegan-lsgan"

    def card_arch_params(self) -> dict:
        return {**self.arch.model_dump(), **self.p.model_dump(), "identity_loss": self.same_shape}

    def card_fields(self) -> dict[str, Any]:
        return {"image_shape": self.data.b.image_shape, "translation": self._translation("a2b")}

    def _translation(self, direction: str) -> Translation:
        a, b = domain("a", self.data), domain("b", self.data.b)
        src, dst = (a, b) if direction == "a2b" else (b, a)
        return Translation(model=self.cfg.name, direction=direction, source=src, target=dst)

    # ---- export -------------------------------------------------------------------------------
    def directions(self) -> dict[str, str]:
        return dict(NETS)

    def direction_card(self, card: ModelCard, direction: str) -> ModelCard:
        if direction not in DIRECTIONS:
            raise UserError(f"direction: must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        t = card.translation
        a, b = (t.source, t.target) if t.direction == "a2b" else (t.target, t.source)
        src, dst = (a, b) if direction == "a2b" else (b, a)
        return card.model_copy(
            update={
                "name": f"{t.model}-{direction}", "inputs": [image_input(tuple(src.image_shape))],
                "image_shape": tuple(dst.image_shape), "num_classes": len(dst.class_names),
                "class_names": list(dst.class_names),
                "translation": Translation(model=t.model, direction=direction, source=src, target=dst),
            }
        )  # fmt: skip
