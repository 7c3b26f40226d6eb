"""One pydantic model describes a training run; presets are named instances of it.

Fields left `None` take the family's paper defaults (for the classic `gan` family: the loss's
optimizer, learning rates, critic steps, spectral norm) when the run starts, and the resolved values
are what the checkpoint records.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Fields a resumed run must share with its checkpoint; everything else (budgets, logging) may change.
MODEL_FIELDS = (
    "family", "family_params", "arch", "arch_params", "loss", "conditional", "cond_mode", "spectral_norm", "latent_dim", "batch_size",
    "n_critic", "optimizer", "lr_g", "lr_d", "betas", "clip", "gp_lambda", "diversity_weight", "lr_decay_from", "ema_decay", "seed",
    "augment",
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
    augment: str = Field(
        "",
        description="DiffAugment policy of what D sees, real and fake (training/diffaugment.py): a comma list "
        "of color, translation, cutout; '' = none",
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

    @field_validator("augment")
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
        if self.augment and not family.augments:  # refused rather than silently left out
            can = ", ".join(sorted(n for n, f in FAMILIES.items() if f.augments))
            raise UserError(
                f"augment: the {self.family} family does not apply DiffAugment to what its D sees; "
                f"families that do: {can}"
            )
        return family.resolve(self)

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

# SAGAN and BigGAN-style share the default preset's recipe: conditional, hinge + spectral norm, mode seeking.
_HINGE_CONDITIONAL: dict[str, Any] = dict(
    batch_size=64, loss="hinge", spectral_norm=True, conditional=True, cond_mode="projection",
    diversity_weight=0.25, ema_decay=0.999, eval_every=1000,
)  # fmt: skip

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
    # InfoGAN (training/families/infogan.py): 62-d noise, a 10-way code and two continuous codes, no labels.
    # A clusterer (training/nets/clusterer.py) learns the reals' clusters by IIC for the first 1,000 steps (no
    # labels); then G and D train as the default preset's, D projecting the clusterer's cluster for a real and
    # G's code for a fake, plus the paper's MI term: 10 minutes alone on 2 threads, seeds 0 / 1, code as
    # classifier 99.3% / 99.1% at FID 19.3 / 14.0 (the default beside them: 10.5; docs/families-log.md, session 14).
    "mnist-infogan": dict(
        **{**_DCGAN32, "latent_dim": 62},
        family="infogan",
        loss="hinge",
        family_params={"cluster_steps": 1000, "self_condition": True},
        diversity_weight=0.25,
        steps=10_000,
        ema_decay=0.999,
        eval_every=1000,
    ),
    # ACGAN (training/families/acgan.py): the default preset's G and hinge + SN, D with a class head; the
    # adversarial head also projects the label, as the default preset's D, and the class loss is
    # MHingeGAN's (multi-class hinge, D's classifier trained on real images) at weight 0.5: 10 minutes,
    # one thread each beside another run, FID 21.5 / 19.5 at 99.3% class accuracy (two seeds; the default
    # preset 19.9-21.1 in three runs), against 28.1 / 99.05% with the paper's cross-entropy (docs/families-log.md).
    "mnist-acgan": dict(
        **_DCGAN32,
        family="acgan",
        family_params={"projection": True, "class_loss": "hinge", "d_fake_class": False, "aux_weight": 0.5},
        loss="hinge",
        conditional=True,
        diversity_weight=0.25,
        steps=10_000,
        ema_decay=0.999,
        eval_every=1000,
    ),
    # StyleGAN2-style (training/families/stylegan.py): class-conditional, 28 px synthesised natively.
    # Batch 16, the default preset's mode-seeking term and Adam 4e-3 (the family's 2e-3 x2): 10 minutes on
    # one thread, FID 17.3 against 29.4 at 2e-3, 62.9 at 1e-3; batch 32 at 2e-3: 71.3, without the term
    # 200.1 (recall 0.001), batch 64: 341 (docs/families-log.md, sessions 8 and 9). R1 gamma 3 (the family's 0.1 x30):
    # 15.2 against 17.3 at 0.1, 16.1 at 1, 19.9 at 10, 29.8 at 0.01 (session 10).
    "mnist-stylegan": dict(
        family="stylegan",
        arch="stylegan",
        family_params={"r1_gamma": 3.0},
        conditional=True,
        latent_dim=64,
        batch_size=16,
        diversity_weight=0.25,
        lr_g=4e-3,
        lr_d=4e-3,
        steps=12_000,  # 8,040 in 600 s on one thread beside another run
        ema_decay=0.999,
        eval_every=1000,
    ),  # fmt: skip
    # Progressive growing (training/families/progan.py): 4 -> 32 px, WGAN-GP + drift, class-conditional.
    # Batch 8 and the default preset's mode-seeking term: 10 minutes on one thread, FID 23.7 (recall 0.55)
    # against 27.6 at batch 16, 40.6 at 32, 189.8 at 32 without the term (recall 0.003; docs/families-log.md, session 9).
    # Adam 1.5e-3 (the paper's 1e-3 x1.5): 23.7 against 26.6 at 1e-3 and 26.7 at 2e-3 (session 10).
    "mnist-progan": dict(
        family="progan",
        arch="progan",
        conditional=True,
        latent_dim=64,
        batch_size=8,
        lr_g=1.5e-3,
        lr_d=1.5e-3,
        diversity_weight=0.25,
        steps=10_000,  # 6,683 in 600 s on one thread beside another run
        ema_decay=0.999,
        eval_every=1000,
        # 32 px fully faded in at step 1,050: the 10-minute table run on one shared thread reached 1,895
        # steps, so the first schedule ([500, 500, 1000] + fades of 500: 32 px from step 3,500) never
        # trained the exported resolution (FID 1,325, 2/10 modes)
        family_params={"stable_steps": [150, 150, 250], "fade_steps": [150, 150, 200]},
    ),  # fmt: skip
    # Unpaired translation MNIST <-> bold MNIST (`gan make-domain-pair`; README, GAN families: CycleGAN).
    "mnist-cyclegan": dict(
        family="cyclegan",
        arch="resnet-patchgan",
        arch_params={"g_width": 16, "g_blocks": 3, "d_width": 16, "d_layers": 2},
        batch_size=16,
        # 10 minutes on 2 idle cores reach ~3,900 steps (2,000 took 301 s): labels kept 98.3% / 98.0%
        # at 3,882 steps against 98.0% / 96.9% when the run stopped at 2,000
        steps=4_000,
        ema_decay=0.995,
        sample_every=250,
        ckpt_every=500,
    ),
    # SAGAN (Zhang et al. 2019): attention at 14 px in G and D, spectral norm in D, hinge, D faster than G
    # (TTUR, D 4e-4). G at 2e-4, not the paper's 1e-4: after ~900 steps (2,000 samples) G 1e-4 had FID 771 and
    # class acc. 19 %, G 2e-4 FID 358 and 66 % (docs/families-log.md, short tuning runs).
    # G takes the label as the default preset's G does (an embedding joined to z) and has no spectral
    # norm; batch 32 (the attention block costs ~2x the default's step): 10 minutes on one thread beside
    # the default preset, FID 15.44 vs its 15.04 = 1.03x (the paper's cBN + SN G at batch 64: 5.8x; docs/families-log.md).
    "mnist-sagan": dict(
        **{**_HINGE_CONDITIONAL, "batch_size": 32},
        arch="sagan",
        latent_dim=64,
        arch_params={"g_width": 32, "d_width": 32, "g_sn": False, "g_cond": "embed"},
        lr_g=2e-4,
        lr_d=4e-4,
        betas=(0.0, 0.9),
        steps=9_000,  # 5,119 in 600 s on one thread beside another run
    ),
    # BigGAN-style (Brock et al. 2019), small: hierarchical latent (3 chunks of 20) + shared embedding
    # into conditional BatchNorm, residual blocks, projection D, orthogonal init and regularisation, EMA G.
    # Adam (0, 0.999) as BigGAN; G 2e-4, D 4e-4, 1 D step (paper, 128 px at batch 2048: 5e-5 / 2e-4, 2 D steps).
    # Batch 16, D at 2x G's rate, no spectral norm on G: a BigGAN step is ~2.4x the default's per image
    # on CPU, so small batches buy the steps (10 minutes on one thread: FID 19.5 at batch 16, 40.8 at 32,
    # 164 for the paper's SN G at batch 64 and one rate; docs/families-log.md, session 8).
    "mnist-biggan": dict(
        **{**_HINGE_CONDITIONAL, "batch_size": 16},
        family="biggan",
        arch="biggan",
        latent_dim=60,
        arch_params={"g_width": 16, "d_width": 16, "shared_dim": 32, "g_sn": False},
        lr_g=2e-4,
        lr_d=4e-4,
        betas=(0.0, 0.999),
        steps=12_000,  # 4,566 in 600 s on one thread beside another run
    ),
    # EBGAN (Zhao et al. 2017): autoencoder D (energy = reconstruction error), margin loss, pulling-away term.
    # Fully connected G and autoencoder, as the paper's MNIST runs: ~6x the conv networks' steps per minute;
    # Adam 5e-4 (the family's 2e-4 learned ~1.7x slower per step). 10 minutes on one thread beside the
    # default preset: FID 33.7 vs its 16.1 = 2.09x (2e-4: 72.1 vs 20.6 = 3.50x; conv networks: 181; docs/families-log.md).
    "mnist-ebgan": dict(
        family="ebgan",
        latent_dim=64,
        batch_size=64,
        arch_params={"generator": "mlp", "autoencoder": "mlp"},
        lr_g=5e-4,
        lr_d=5e-4,
        # 30,000 in 486 s alone on 2 threads: FID 18.35 (1.86x the default) against 30.65 (3.10x) when
        # it stopped at 14,000 in 278 s, the cap it had from one-thread pairs (docs/families-log.md, session 15)
        steps=30_000,
        ema_decay=0.999,
        eval_every=1000,
    ),
    # BEGAN (Berthelot et al. 2017): autoencoder D with L1 error, equilibrium controller k_t. Scaled for a
    # short run on sparse digits (docs/families-log.md, sessions 7-16): fully connected G and autoencoder as
    # mnist-ebgan, LeakyReLU (ELU: FID 32.8 against 30.5, one run each), gamma 1.5 and lambda_k 0.003 (paper
    # 0.5 / 0.001: on MNIST fakes are harder to reconstruct than reals, so below gamma 1 k_t stays at 0 and G
    # collapses), k_t clamped to [0, 0.7] (paper [0, 1]: once k_t L(G(z)) nears L(x), D spoils its own
    # reconstructions of reals and fakes alike and the run blows up; 0.75-0.8 drifted there, 0.45-0.6 learned
    # slower), Adam 5e-4, a light mode-seeking term, both rates decayed linearly to 0 over the second half.
    # Session 17: Adam through the fused kernel (1.24x the steps per second, so 36,000 steps instead of
    # 30,000) and BEGAN-CS's latent constraint (alpha 0.05). 10 minutes alone on 2 threads, seeds 0 / 1 / 2:
    # FID 24.77 / 18.54 / 22.79 = 2.51x / 1.88x / 2.31x the default (without the constraint 2.77x / 3.03x /
    # 2.94x; session 16's per-tensor Adam at 30,000 steps 3.09x / 3.38x; docs/families-log.md).
    "mnist-began": dict(
        family="began",
        latent_dim=64,
        batch_size=64,
        arch_params={"generator": "mlp", "autoencoder": "mlp", "d_activation": "lrelu"},
        family_params={"gamma": 1.5, "lambda_k": 0.003, "k_max": 0.7, "latent_constraint": 0.05},
        lr_g=5e-4,
        lr_d=5e-4,
        diversity_weight=0.05,
        lr_decay_from=0.5,
        fused_adam=True,
        steps=36_000,
        ema_decay=0.999,
        eval_every=1000,
    ),
}


# The data-agnostic presets: `gan train --preset cdcgan --data DIR` sizes the network from the data
# (SIZE_RULES) and keeps the recipe of the matching mnist-* preset. Their names carry no dataset.
def _sized_from_data(recipe: dict[str, Any]) -> dict[str, Any]:
    """A preset's recipe with the network size (arch_params, latent_dim) left to SIZE_RULES."""
    return {
        **{k: v for k, v in recipe.items() if k not in ("arch_params", "latent_dim")},
        "size_from_data": True,
    }


PRESETS.update(
    {
        "cdcgan": _sized_from_data(PRESETS["mnist-cdcgan"]),
        "dcgan": _sized_from_data(PRESETS["mnist-dcgan"]),
        "wgan-gp": _sized_from_data(PRESETS["mnist-wgan-gp"]),
        "gan": {**PRESETS["mnist-gan"], "size_from_data": True},  # the MLP takes any image size as it is
        # StyleGAN-style builds its resolutions from the image shape (nets/stylegan.resolutions). R1 gamma
        # 0.5 instead of MNIST's 3: on the 32 px colour demo, 10 minutes, seeds 0 / 1: 93.5x / 98.0x the
        # floor against 152x / 141x at 3, 108x at 0.1; cdcgan's best 394x (README, Colour runs).
        "stylegan": {**PRESETS["mnist-stylegan"], "family_params": {"r1_gamma": 0.5}, "size_from_data": True},
    }
)

# Image side -> what a data-sized DCGAN uses. 28/32 px: the mnist-cdcgan widths (32 trains ~2.5x more
# steps per minute than 64 on 2 CPU cores); 64 px: one more up/down-sampling layer (dcgan.SIZES) at the
# same width, a bigger latent for the 4x more pixels.
SIZE_RULES: dict[int, dict[str, Any]] = {
    28: {"latent_dim": 64, "arch_params": {"g_width": 32, "d_width": 32}},
    32: {"latent_dim": 64, "arch_params": {"g_width": 32, "d_width": 32}},
    64: {"latent_dim": 128, "arch_params": {"g_width": 32, "d_width": 32}},
}


def _square_sizes(arch: str) -> tuple[int, ...]:
    """The square image sides an architecture builds, from its network module (empty: any size)."""
    if arch == "dcgan":
        from training.nets.dcgan import SIZES

        return tuple(sorted(SIZES))
    if arch == "stylegan":
        from training.nets.stylegan import SIZES

        return SIZES
    return ()


def fit_to_data(cfg: TrainConfig, image_shape, labelled: bool, source: str = "the data") -> TrainConfig:
    """The config for this data: network size from the image size (size_from_data), checks that say what to do.

    Explicit arch_params keys (--set) win over the rule; the result records every value, so a
    resumed run and the checkpoint's config need nothing else.
    """
    from gan_core.errors import UserError

    c, h, w = image_shape
    if cfg.conditional and not labelled:
        raise UserError(
            f"{source}: has no class labels (a flat folder or an .npz without labels), but preset {cfg.name!r} is "
            "conditional; use an unconditional preset (dcgan, gan, wgan-gp) or class subfolders"
        )
    built = _square_sizes(cfg.arch)
    if built and (h != w or h not in built):
        sizes = ", ".join(map(str, built[:-1])) + f" or {built[-1]}"
        raise UserError(
            f"{source}: images are {h}x{w}, {cfg.arch} builds square {sizes} px images; "
            f"pass --image-size {sizes} (--fit crop or stretch)"
        )
    if not cfg.size_from_data or cfg.arch != "dcgan":
        return cfg
    rule = SIZE_RULES[h]
    update: dict[str, Any] = {"arch_params": {**rule["arch_params"], **cfg.arch_params}}
    if "latent_dim" not in cfg.model_fields_set:  # not asked for with --set latent_dim=N
        update["latent_dim"] = rule["latent_dim"]
    return cfg.model_copy(update=update)


def preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    fields = {"name": name, "out": f"runs/{name}", **PRESETS[name]}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**fields)
