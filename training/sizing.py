"""A run's config fitted to its data: the network sized from the images, refusals that say what to do.

The data-agnostic presets (size_from_data: `gan train --preset cdcgan --data DIR`) keep the recipe of
their mnist-* preset and leave the network size (arch_params, latent_dim) to SIZE_RULES.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gan_core.errors import UserError

if TYPE_CHECKING:
    from training.config import TrainConfig

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
