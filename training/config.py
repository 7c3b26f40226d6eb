"""One pydantic model describes a training run; presets (training/presets/*.yaml) are named instances of it.

Fields left `None` take the family's paper defaults (for the classic `gan` family: the loss's
optimizer, learning rates, critic steps, spectral norm) when the run starts, and the resolved values
are what the checkpoint records.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Fields a resumed run must share with its checkpoint; everything else (budgets, logging) may change.
MODEL_FIELDS = (
    "family", "family_params", "arch", "arch_params", "loss", "conditional", "cond_mode", "spectral_norm", "latent_dim", "batch_size",
    "n_critic", "optimizer", "lr_g", "lr_d", "betas", "clip", "gp_lambda", "gp_every", "r1_gamma", "diversity_weight", "lr_decay_from", "ema_decay", "seed",
    "diffaugment",
)  # fmt: skip

# Old field name -> its name now. Checkpoints and preset files written before a rename still say the
# old one; TrainConfig reads it as the new one (a config giving both is refused).
RENAMED = {"augment": "diffaugment"}


def current_names(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with every old field name (RENAMED) replaced by its name now."""
    return {RENAMED.get(k, k): v for k, v in fields.items()}


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
    fused_adam: bool = Field(
        False,
        description="Adam through torch's fused kernel (the same update, rounded differently): ~1.2x the steps "
        "per second of the fully connected presets on 2 CPU cores, where the per-tensor loop is ~25% of a step",
    )
    lr_g: float | None = Field(None, gt=0)
    lr_d: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    clip: float = 0.01
    gp_lambda: float = 10.0
    gp_every: int = Field(
        1,
        ge=1,
        le=100,
        description="gradient penalty on every k-th critic step, weighted k times (lazy regularisation)",
    )
    r1_gamma: float = Field(
        0.0,
        ge=0,
        description="R1 (Mescheder et al. 2018): D pays r1_gamma / 2 x E|grad_x D(x)|^2 on the reals, beside "
        "its loss, on every gp_every-th critic step (families whose D steps take a lazy penalty)",
    )
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
    diffaugment: str = Field(
        "",
        description="DiffAugment policy of what D sees, real and fake (training/diffaugment.py): a comma list "
        "of color, translation, cutout; '' = none",
    )
    ema_decay: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="decay of G's weight average; it warms up as min(ema_decay, (1+step)/(10+step)), so a "
        "decay d acts only from step ~9/(1-d) (0.999: 9,000; 0.9995: 18,000) and averages over ~step/9 before",
    )
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
    # ---- data preparation, evaluation and sizing (any image dataset) ----
    image_size: int | None = Field(
        None,
        ge=4,
        le=4096,
        description="resize every image to N x N when loading (None = take them as they are)",
    )
    fit: Literal["crop", "stretch"] = Field("crop", description="with image_size: centre crop or stretch")
    channels: Literal[1, 3] | None = Field(
        None, description="convert every image to grayscale (1) or RGB (3)"
    )
    evaluator: str | None = Field(
        None,
        description="quick evaluation: None = the evaluator bound to the data if any, 'auto' = train one "
        "first when there is none, 'off', or an evaluator name / path stem bound to this data",
    )
    evaluator_epochs: int | None = Field(None, ge=1, description="epochs of an evaluator trained by 'auto'")
    size_from_data: bool = Field(
        False,
        description="fill arch_params / latent_dim from the data's image size (the data-agnostic presets)",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """An old field name (a checkpoint's or preset file's `augment`) is read as its name now."""
        if not isinstance(data, dict):
            return data
        for old, new in RENAMED.items():
            if old in data and new in data:
                raise ValueError(f"{old}: the old name of {new}; give only {new}")
        return current_names(data)

    @field_validator("diffaugment")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if not v:
            return v
        from training.diffaugment import parse_policy

        return ",".join(parse_policy(v))

    def resolved(self) -> TrainConfig:
        """Fill None fields from the family's (paper) defaults."""
        from gan_core.errors import UserError
        from training.registry import FAMILIES, get_family

        family = get_family(self.family)

        def having(flag: str) -> str:
            """The registered families whose class sets `flag`, for an error's list of where a field applies."""
            return ", ".join(sorted(n for n, f in FAMILIES.items() if getattr(f, flag)))

        if self.diffaugment and not family.diffaugments:  # refused rather than silently left out
            raise UserError(
                f"diffaugment: the {self.family} family does not apply DiffAugment to what its D sees; "
                f"families that do: {having('diffaugments')}"
            )
        resolved = family.resolve(self)
        if resolved.r1_gamma and not family.lazy_penalty:
            raise UserError(
                f"r1_gamma: the {self.family} family's D steps take no R1 term"
                + ("; StyleGAN's is family_params.r1_gamma" if self.family == "stylegan" else "")
                + f"; families that do: {having('lazy_penalty')}"
            )
        if resolved.gp_every != 1:
            losses = penalised_losses()
            if not (family.lazy_penalty and (resolved.loss in losses or resolved.r1_gamma)):
                loss = family.own_loss or resolved.loss
                raise UserError(
                    f"gp_every: {resolved.gp_every} would be ignored: this run ({self.family} family, {loss} "
                    f"loss) spaces out no gradient penalty; gp_every applies to the "
                    f"{', '.join(losses)} loss or r1_gamma in the families {having('lazy_penalty')}"
                )
        return resolved

    def model_differences(self, other: TrainConfig) -> list[str]:
        """Human-readable list of model-defining fields that differ (for refusing a resume)."""
        a, b = self.resolved(), other.resolved()
        return [
            f"{f}: checkpoint has {getattr(b, f)!r}, this run asks {getattr(a, f)!r}"
            for f in MODEL_FIELDS
            if getattr(a, f) != getattr(b, f)
        ]


def penalised_losses() -> list[str]:
    """The registered losses that add a gradient penalty to D's loss (what gp_every spaces out)."""
    from training.losses import GANLoss
    from training.registry import LOSSES

    return sorted(n for n, loss in LOSSES.items() if loss.penalty is not GANLoss.penalty)


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset's config (a name in training/presets/ or a preset file's path); overrides left None keep it."""
    from training.presets import settings  # the presets are files this model validates

    run_name, fields = settings(name)
    fields = {"name": run_name, "out": f"runs/{run_name}", **fields}
    fields.update({k: v for k, v in current_names(overrides).items() if v is not None})
    return TrainConfig(**fields)
