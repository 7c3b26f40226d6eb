"""What several families share: their optimisers (Adam, the classic family's Adam or RMSprop), the
config defaults of the families with their own networks, the card's z (+ labels) inputs, the sample
grid. The loss terms several families add are in training/families/terms.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pydantic import BaseModel

from gan_core.card import InputSpec, class_input, latent_input
from gan_core.errors import UserError
from gan_core.imaging import float_to_uint8
from training.config import TrainConfig
from training.families.params import validated

GRID_SEED = 2024  # the same latents for every grid of a run


def adam(cfg: TrainConfig, params, lr: float, betas=None, eps: float = 1e-8) -> torch.optim.Adam:
    """torch's Adam (betas default: the run's), through the fused kernel when the run asks (`fused_adam`)."""
    return torch.optim.Adam(
        params,
        lr=lr,
        betas=tuple(cfg.betas if betas is None else betas),
        eps=eps,
        fused=cfg.fused_adam or None,
    )


def make_optimizer(cfg: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    """The optimiser of the run's `optimizer` (the classic losses' defaults): RMSprop, or Adam."""
    if cfg.optimizer == "rmsprop":
        if cfg.fused_adam:
            raise UserError("fused_adam: this run's optimizer is rmsprop; fused_adam applies to Adam only")
        return torch.optim.RMSprop(params, lr=lr)
    return adam(cfg, params, lr)


def arch_settings(model: type[BaseModel], cfg: TrainConfig, family: str) -> BaseModel:
    """cfg.arch_params as the family's network model; a bad one is one UserError line."""
    return validated(model, cfg.arch_params, "arch_params", f"the {family} family's networks")


def resolve_adam_family(
    cfg: TrainConfig,
    family: str,
    arch: str,
    arch_model: type[BaseModel],
    lr: float,
    betas: tuple[float, float],
    **update,
) -> TrainConfig:
    """`cfg` (its family_params already resolved by the family) with the family's own network name
    (the config default 'dcgan' becomes `arch`), its arch_params validated by `arch_model` with every
    default filled, Adam at `lr` / `betas` unless set, one critic step unless set, no spectral norm,
    plus `update`."""
    if cfg.arch not in ("dcgan", arch):
        raise UserError(
            f"arch: the {family!r} family builds its own {arch!r} networks, got arch={cfg.arch!r}"
        )
    if cfg.optimizer not in (None, "adam"):
        raise UserError(f"optimizer: the {family!r} family trains with Adam, got {cfg.optimizer!r}")
    return cfg.model_copy(
        update={
            "arch": arch,
            "arch_params": arch_settings(arch_model, cfg, family).model_dump(),
            "n_critic": cfg.n_critic or 1,
            "optimizer": "adam",
            "lr_g": cfg.lr_g or lr,
            "lr_d": cfg.lr_d or lr,
            "betas": cfg.betas or betas,
            "spectral_norm": False,
            **update,
        }
    )


def zl_inputs(cfg: TrainConfig) -> list[InputSpec]:
    """A z latent, plus class labels for a conditional generator."""
    return [latent_input(cfg.latent_dim)] + ([class_input()] if cfg.conditional else [])


def learned_code_input(name: str, n: int, what: str) -> InputSpec:
    """A categorical input learned without labels (InfoGAN's code, selfcond's cluster): `what` names it."""
    return InputSpec(
        name=name, kind="categorical", dtype="int64", num_choices=n,
        description=f"{what}, 0..{n - 1}, learned without labels; which class each value draws is measured by "
        "`gan evaluate` (card metrics code_classes)",
    )  # fmt: skip


@torch.no_grad()
def rows_grid(
    run: Callable[[torch.Tensor, torch.Tensor | None, torch.Generator], torch.Tensor],
    latent_dim: int,
    num_classes: int,
    conditional: bool,
    device: torch.device,
    ncols: int = 10,
) -> tuple[np.ndarray, int]:
    """Fixed latents: one row per class (up to 16) for conditional models, 8 rows otherwise.

    run(z, labels, gen) returns [-1, 1] images; `gen` (seeded like z) draws any other input.
    """
    gen = torch.Generator().manual_seed(GRID_SEED)
    rows = min(num_classes if conditional else 8, 16)
    z = torch.randn(rows * ncols, latent_dim, generator=gen).to(device)
    labels = torch.arange(rows).repeat_interleave(ncols).to(device) if conditional else None
    return float_to_uint8(run(z, labels, gen).float().cpu().numpy()), ncols
