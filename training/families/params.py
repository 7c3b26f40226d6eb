"""A family's own settings: `family_params` of the run config over the family's defaults."""

from __future__ import annotations

from typing import Any

from training.config import TrainConfig


def family_params(cfg: TrainConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated by cfg.family_params; a name the family does not know is refused."""
    unknown = sorted(set(cfg.family_params) - set(defaults))
    if unknown:
        raise ValueError(
            f"family_params: {cfg.family} has no setting {unknown[0]!r} (settings: {', '.join(defaults)})"
        )
    return {**defaults, **cfg.family_params}
