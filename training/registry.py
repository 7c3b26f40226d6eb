"""Name -> builder registries for networks and losses; the training loop looks names up here only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ARCHS: dict[str, Callable[..., Any]] = {}
LOSSES: dict[str, type] = {}


def register_arch(name: str):
    """Register `fn(image_shape, num_classes, conditional, latent_dim, **params) -> (G, D)`."""

    def deco(fn):
        if name in ARCHS:
            raise KeyError(f"architecture {name!r} registered twice")
        ARCHS[name] = fn
        return fn

    return deco


def register_loss(name: str):
    """Register a `GANLoss` subclass under `name`."""

    def deco(cls):
        if name in LOSSES:
            raise KeyError(f"loss {name!r} registered twice")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    # Importing the modules runs their @register decorators.
    from training import losses  # noqa: F401
    from training.nets import dcgan, mlp  # noqa: F401


def get_arch(name: str):
    _load_builtins()
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[name]


def get_loss(name: str):
    _load_builtins()
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
