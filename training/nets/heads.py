"""A registered discriminator with a second head on its trunk features (InfoGAN's Q, ACGAN's classifier)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class TwoHeadDiscriminator(nn.Module):
    """forward(x, labels=None) -> (adversarial logits [N], aux(features)): one call for both heads.

    `d` is a Discriminator of training/nets (a feature trunk (`features`) and its `head`, plus the projection
    embedding when it is conditional: labels then enter the adversarial logit only);
    `make_aux(feature_dim)` builds the second head.
    """

    def __init__(self, d: nn.Module, make_aux: Callable[[int], nn.Module]):
        super().__init__()
        if not (hasattr(d, "features") and hasattr(d, "project") and hasattr(d, "head")):
            raise ValueError(
                f"needs a discriminator with a feature trunk (features) and a head, got {type(d).__name__}"
            )
        self.d = d
        self.aux = make_aux(d.head.in_features)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        label_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """label_fn(aux output) -> labels for the projection, when the labels come from the second head."""
        h = self.d.features(x)
        aux = self.aux(h)
        if label_fn is not None:
            labels = label_fn(aux)
        return self.d.project(h, labels), aux
