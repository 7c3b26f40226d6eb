"""Build a (G, D) pair from a run config through the registry."""

from __future__ import annotations

from training.config import TrainConfig
from training.registry import get_arch


def build_networks(cfg: TrainConfig, image_shape, num_classes: int):
    cfg = cfg.resolved()
    builder = get_arch(cfg.arch)
    return builder(
        tuple(image_shape),
        num_classes,
        cfg.conditional,
        cfg.latent_dim,
        cond_mode=cfg.cond_mode,
        sn=cfg.spectral_norm,
        **cfg.arch_params,
    )
