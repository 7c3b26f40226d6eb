"""The family contract: what a GAN family provides and what the training loop gives it.

A family owns its networks, their optimisers, its losses and its step phases; the trainer owns the
loop, devices, AMP, data parallelism, EMA, checkpoints and callbacks (grids, quick evaluation, logging, NaN guard)
and knows no family. A new GAN is one module in training/families/ with a `@register_family` class.
Family is an abstract base class: what every family must write is abstract (its networks, their
optimisers, its phases, its card inputs, its sample grid), so a family missing one cannot be
instantiated (TypeError naming it); the other methods are hooks with defaults.

The trainer seeds torch's RNG and calls `build(device)`: the family creates its networks on the
device (`build_nets`, kept as `self.nets`) and then their optimisers (`build_optimizers`, kept as
`self.opts`); the trainer takes EMA copies, averages the ranks' gradients under torchrun and checkpoints both.

Per training step the trainer calls `schedule(step)`, then runs every phase of `phases()` whose `every`
divides the step, `repeats` times each: `phase.run(ctx)` calls the function the phase carries with a
StepContext (the next real batch, the noise generator, the networks, the autocast context);
it returns the values it wants logged, a dict of floats. Phases flagged `ema` update the EMA copy of
every generator afterwards.

Two-dataset families (image-to-image translation, e.g. CycleGAN) set `needs_data_b`: the run then
takes a second dataset (TrainConfig.data_b), the family's DataInfo carries it as `b`, and phases
draw its batches from `ctx.next_batch_b`. A family with several exportable generators names them
in `generators` (each gets an EMA copy, checkpointed as '<net>_ema') and maps export `directions()`
onto them.

A family's own settings (TrainConfig.family_params) are one pydantic model, its `settings_model` (a
training.families.params.FamilySettings: unknown keys and wrongly typed values are refused). resolve()
checks them and makes every other refusal that needs only the config (one UserError line each), so a
resolved config is one the family trains; the family reads its settings as `self.p`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gan_core.card import InputSpec, ModelCard
from training.config import TrainConfig
from training.diffaugment import diff_augment, parse_policy
from training.families.params import FamilySettings, validated


@dataclass(frozen=True)
class Phase:
    """One kind of optimisation step and the function that runs it: `fn(ctx)` runs `repeats` times on
    steps where step % every == 0 and returns the values it logs (floats by name, e.g. {'d_loss': ...})."""

    name: str
    fn: Callable[[StepContext], dict[str, float]]
    every: int = 1
    repeats: int = 1
    ema: bool = False  # the generator changed: update its EMA copy after this phase

    def run(self, ctx: StepContext) -> dict[str, float]:
        """One run of the phase: the logged values."""
        return self.fn(ctx)


@dataclass(frozen=True)
class DataInfo:
    """What a family may know about its data when it builds networks (from the dataset or a card)."""

    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    b: DataInfo | None = None  # the second dataset of a two-dataset family
    dataset: dict[str, Any] = field(default_factory=dict, compare=False)  # name, source, n, fingerprint
    # a few fixed images of the data (uint8 [k, C, H, W]) for sample grids; None when built from a card
    preview: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class StepContext:
    """What the trainer hands a phase."""

    step: int
    device: torch.device
    noise: (
        torch.Generator
    )  # checkpointed: the only source of training-time randomness besides torch's global RNG
    nets: dict[str, nn.Module]  # the family's nets: call these for forward passes
    next_batch: Callable[
        [], tuple[torch.Tensor, torch.Tensor]
    ]  # (images in [-1, 1], labels) of the run's data
    autocast: Callable[[], contextlib.AbstractContextManager]
    extra: dict[str, Any] = field(default_factory=dict)
    next_batch_b: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None  # the second dataset's


class Family(ABC):
    """Base class. Subclasses set `name` (via @register_family) and implement the abstract methods."""

    name: ClassVar[str] = "base"
    generator: ClassVar[str] = "g"  # the net that is sampled and exported by default
    generators: ClassVar[tuple[str, ...]] = ("g",)  # nets with an EMA copy (exportable)
    needs_data_b: ClassVar[bool] = False  # trains on two datasets (TrainConfig.data_b, ctx.next_batch_b)
    takes_images: ClassVar[bool] = False  # its generator maps images to images (no latents to sample)
    # its D phases apply TrainConfig.diffaugment (DiffAugment); the config refuses it for the others
    diffaugments: ClassVar[bool] = False
    # its D phases space the loss's gradient penalty by TrainConfig.gp_every; the config refuses it for the others
    lazy_penalty: ClassVar[bool] = False
    own_loss: ClassVar[str | None] = None  # what it trains with instead of TrainConfig.loss (then unused)
    settings_model: ClassVar[type[FamilySettings]] = FamilySettings  # its family_params (here: none)

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        self.cfg = cfg
        self.data = data
        self.p = self.settings(cfg)
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.policy = parse_policy(cfg.diffaugment)
        # set by the trainer under torchrun: averages the ranks' gradients before each optimiser step
        self.average_gradients: Callable[[list[torch.Tensor]], None] | None = None

    def diffaugment(self, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """What D sees of x: x under the run's DiffAugment policy (x itself, and no draws, without one).
        Families whose D phases call it set `diffaugments`; the config refuses `diffaugment` for the others."""
        return diff_augment(x, self.policy, ctx.noise)

    # ---- configuration ------------------------------------------------------------------------
    @classmethod
    def settings(cls, cfg: TrainConfig) -> FamilySettings:
        """cfg.family_params as the family's settings model; a bad one is one UserError line."""
        return validated(cls.settings_model, cfg.family_params, "family_params", f"the {cls.name} family")

    @classmethod
    def with_settings(cls, cfg: TrainConfig) -> TrainConfig:
        """cfg with its family_params checked and written back with every default filled, so the
        checkpoint and the card record the settings a run really used."""
        return cfg.model_copy(update={"family_params": cls.settings(cfg).model_dump()})

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        """Fill the config's None fields with the family's (paper) defaults and refuse what the family
        cannot train, one UserError line each. Every override starts from `with_settings(cfg)` (or
        super().resolve), so a family's settings are always checked here."""
        return cls.with_settings(cfg)

    @classmethod
    def data_from_card(cls, card: ModelCard) -> DataInfo:
        """The DataInfo a checkpoint's card implies (to rebuild the networks for export)."""
        return DataInfo(
            tuple(card.image_shape), card.num_classes, tuple(card.class_names), dataset=card.dataset
        )

    # ---- building -----------------------------------------------------------------------------
    def build(self, device: torch.device | str = "cpu") -> None:
        """Create the networks on `device` (`self.nets`), then their optimisers (`self.opts`).

        The trainer seeds torch's RNG just before: the initial weights are a function of the run's seed.
        """
        self.nets = {name: net.to(device) for name, net in self.build_nets().items()}
        self.opts = self.build_optimizers()

    @abstractmethod
    def build_nets(self) -> dict[str, nn.Module]:
        """Create every network, by name (not yet on the device; export builds them alone)."""

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per trained net (named like the nets they train), over `self.nets`."""

    # ---- training -----------------------------------------------------------------------------
    @abstractmethod
    def phases(self) -> list[Phase]:
        """The phases of a step, in the order they run, each carrying the method that runs it."""

    def schedule(self, step: int) -> None:
        """Called before every step: a family whose networks or losses change over training hooks in here."""
        return None

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint must keep beyond weights and optimisers (e.g. a controller's k_t)."""
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        return None

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """zero_grad, backward, step for optimiser `name`."""
        self.step_optimizers((name,), loss)

    def step_optimizers(self, names: tuple[str, ...], loss: torch.Tensor) -> None:
        """One backward for a loss shared by the nets of the optimisers named, then each steps (after the
        ranks' gradients are averaged, under torchrun).

        The backward reaches only the stepped nets' parameters (`inputs=`): the other nets' weight
        gradients, which their own optimiser would discard unused, are never computed (stylegan2-ada
        freezes the other net per phase), so a G phase goes back through D for its input gradient alone."""
        opts = [self.opts[k] for k in names]
        params = [p for opt in opts for group in opt.param_groups for p in group["params"] if p.requires_grad]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params or None)
        if self.average_gradients is not None:
            self.average_gradients(params)
        for opt in opts:
            opt.step()

    # ---- inference ----------------------------------------------------------------------------
    @abstractmethod
    def card_inputs(self) -> list[InputSpec]:
        """The generator's inputs as the model card declares them (names, kinds, shapes)."""

    def inference_module(self, g: nn.Module) -> nn.Module:
        """The module that is sampled and exported: takes the card's inputs positionally, returns [-1, 1] images."""
        return g

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        """Inputs for batch `batch` of n images when BatchNorm statistics are re-estimated (training.ema).

        Needed only by a family whose generator has BatchNorm (the others are never asked)."""
        raise NotImplementedError(
            f"the {self.name} family's generator has BatchNorm: write recalibration_inputs"
        )

    def eval_caveat(self) -> str | None:
        """Why metrics taken now are not yet the run's own (e.g. a growing G below its final resolution), or None.

        The quick evaluation logs the metrics with this caveat and holds its collapse checks meanwhile.
        """
        return None

    def grid_name(self, step: int) -> str:
        """File name (without .png) of the grid written at `step` under samples/ (e.g. one per stage)."""
        return f"step-{step:07d}"

    @abstractmethod
    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        """(uint8 images [N, H, W, C], columns) of the run's sample grid, from fixed inputs."""

    def grid_nets(self, nets: dict[str, nn.Module], device: torch.device) -> tuple[np.ndarray, int]:
        """The grid from every generator's inference module (by net name); one-generator families use grid()."""
        return self.grid(nets[self.generator], device)

    def card_variant(self) -> str:
        """What the card's `variant` says (e.g. the loss)."""
        return self.name

    def card_arch_params(self) -> dict:
        """What the card's `arch_params` records about the networks."""
        return dict(self.cfg.arch_params)

    def card_fields(self) -> dict[str, Any]:
        """Further card fields (or overrides, e.g. `translation`, `image_shape`) of the run's card."""
        return {}

    # ---- export -------------------------------------------------------------------------------
    def directions(self) -> dict[str, str]:
        """Export direction name -> generator net, for families exporting several files (e.g. a2b / b2a)."""
        return {}

    def direction_card(self, card: ModelCard, direction: str) -> ModelCard:
        """The card of the file exported for `direction`, from the run's card (families with `directions`)."""
        raise NotImplementedError(f"the {self.name} family exports one generator: it has no directions")
