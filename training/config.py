"""One pydantic model describes a training run; presets are named instances of it.

Fields left `None` take the family's paper defaults (for the classic `gan` family: the loss's
optimizer, learning rates, critic steps, spectral norm) when the run starts, and the resolved values
are what the checkpoint records.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Fields a resumed run must share with its checkpoint; everything else (budgets, logging) may change.
MODEL_FIELDS = (
    "family", "family_params", "arch", "arch_params", "loss", "conditional", "cond_mode", "spectral_norm", "latent_dim", "batch_size",
    "n_critic", "optimizer", "lr_g", "lr_d", "betas", "clip", "gp_lambda", "diversity_weight", "lr_decay_from", "ema_decay", "seed",
)  # fmt: skip


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="run / model name, goes into the card")
    data: str | None = Field(
        None, description="dataset path; None = MNIST (domain A of a two-dataset family)"
    )
    data_b: str | None = Field(
        None, description="second dataset (domain B), for families that translate between two"
    )
    out: str = "runs/default"
    family: str = Field("gan", description="GAN family (training/families): networks, losses, step phases")
    family_params: dict[str, Any] = Field(default_factory=dict, description="the family's own settings")
    arch: str = "dcgan"
    arch_params: dict[str, Any] = Field(default_factory=dict)
    loss: str = "ns"
    conditional: bool = False
    cond_mode: Literal["concat", "projection"] = "projection"
    spectral_norm: bool | None = None
    latent_dim: int = Field(64, ge=1, le=4096)
    batch_size: int = Field(64, ge=1, le=65536)
    steps: int = Field(10_000, ge=0, description="generator steps")
    max_minutes: float | None = Field(None, gt=0)
    n_critic: int | None = Field(None, ge=1, le=100)
    optimizer: Literal["adam", "rmsprop"] | None = None
    lr_g: float | None = Field(None, gt=0)
    lr_d: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    clip: float = 0.01
    gp_lambda: float = 10.0
    diversity_weight: float = Field(
        0.0,
        ge=0,
        description="mode-seeking term (Mao et al. 2019): G pays weight / (|G(z1)-G(z2)| / |z1-z2|) for same-label pairs",
    )
    lr_decay_from: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="from this fraction of `steps`, learning rates fall linearly to 0 at `steps`",
    )
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: int = Field(0, ge=0, description="step from which the EMA averages (copies before)")
    seed: int = 0
    sample_every: int = Field(500, ge=1)
    ckpt_every: int = Field(1000, ge=1)
    keep: int = Field(3, ge=1, description="checkpoints kept")
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(0, ge=0, description="quick evaluation period in steps (0 = off)")
    eval_n: int = Field(2000, ge=100)
    device: str = "auto"
    amp: bool = True
    threads: int | None = Field(None, ge=1)

    def resolved(self) -> TrainConfig:
        """Fill None fields from the family's (paper) defaults."""
        from training.registry import get_family

        return get_family(self.family).resolve(self)

    def model_differences(self, other: TrainConfig) -> list[str]:
        """Human-readable list of model-defining fields that differ (for refusing a resume)."""
        a, b = self.resolved(), other.resolved()
        return [
            f"{f}: checkpoint has {getattr(b, f)!r}, this run asks {getattr(a, f)!r}"
            for f in MODEL_FIELDS
            if getattr(a, f) != getattr(b, f)
        ]


# The DCGAN presets share the network: width 32 trains ~2.5x more steps per minute than 64 on 2 CPU cores.
_DCGAN32: dict[str, Any] = dict(
    arch="dcgan", latent_dim=64, batch_size=64, arch_params={"g_width": 32, "d_width": 32}
)

PRESETS: dict[str, dict[str, Any]] = {
    # The classic Keras MLP GAN, non-saturating loss.
    "mnist-gan": dict(arch="mlp", loss="ns", latent_dim=100, batch_size=64, steps=20_000, ema_decay=0.999),
    "mnist-dcgan": dict(**_DCGAN32, loss="ns", steps=10_000),
    # The model the service serves by default.
    # Hinge + spectral norm and a lighter mode-seeking term won the 10-minute runs (README, Training).
    "mnist-cdcgan": dict(
        **_DCGAN32,
        loss="hinge",
        conditional=True,
        cond_mode="projection",
        diversity_weight=0.25,
        steps=10_000,
        ema_decay=0.999,
        eval_every=1000,
    ),  # fmt: skip
    "mnist-wgan-gp": dict(**_DCGAN32, loss="wgan-gp", steps=4_000),
    # Unpaired translation MNIST <-> bold MNIST (`gan make-domain-pair`; README, GAN families: CycleGAN).
    "mnist-cyclegan": dict(
        family="cyclegan",
        arch="resnet-patchgan",
        arch_params={"g_width": 16, "g_blocks": 3, "d_width": 16, "d_layers": 2},
        batch_size=16,
        steps=2_000,
        ema_decay=0.995,
        sample_every=250,
        ckpt_every=500,
    ),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    fields = {"name": name, "out": f"runs/{name}", **PRESETS[name]}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**fields)
