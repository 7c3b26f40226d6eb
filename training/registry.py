"""Name -> builder registries for GAN families, networks and losses, filled by auto-discovery.

Every module of training/families/ and training/nets/ (and training/losses) is imported on first
lookup, which runs its @register_* decorators: a new family or network is one file, no import list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

FAMILIES: dict[str, type] = {}
ARCHS: dict[str, Callable[..., Any]] = {}
LOSSES: dict[str, type] = {}
_DISCOVERED = False


def _register(table: dict, kind: str, name: str):
    def deco(obj):
        if name in table:
            raise KeyError(f"{kind} {name!r} registered twice")
        table[name] = obj
        if isinstance(obj, type):
            obj.name = name
        return obj

    return deco


def register_family(name: str):
    """Register a training.families.base.Family subclass under `name` (the config's `family`)."""
    return _register(FAMILIES, "family", name)


def register_arch(name: str):
    """Register `fn(image_shape, num_classes, conditional, latent_dim, **params) -> (G, D)`."""
    return _register(ARCHS, "architecture", name)


def register_loss(name: str):
    """Register a `GANLoss` subclass under `name`."""
    return _register(LOSSES, "loss", name)


def discover() -> None:
    """Import every family, network and loss module once (their decorators fill the tables)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import training.families
    import training.nets

    importlib.import_module("training.losses")
    for pkg in (training.nets, training.families):
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_") and mod.name != "base":
                importlib.import_module(f"{pkg.__name__}.{mod.name}")


def _get(table: dict, kind: str, name: str):
    discover()
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def get_family(name: str):
    return _get(FAMILIES, "family", name)


def get_arch(name: str):
    return _get(ARCHS, "architecture", name)


def get_loss(name: str):
    return _get(LOSSES, "loss", name)
