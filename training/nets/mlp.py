"""The MLP GAN of the classic Keras digit example: G 100-256-512-1024-784, D 784-512-256-1."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.nets.common import Discriminator, Generator, maybe_sn
from training.registry import register_arch


class MLPGenerator(Generator):
    def __init__(
        self, latent_dim, num_classes, conditional, image_shape, hidden=(256, 512, 1024), embed_dim=None
    ):
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        embed_dim = embed_dim or latent_dim
        self.embed = nn.Embedding(num_classes, embed_dim) if conditional else None
        layers, width = [], latent_dim + (embed_dim if conditional else 0)
        for h in hidden:
            # Keras BatchNormalization(momentum=0.8) == torch momentum 0.2.
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.BatchNorm1d(h, momentum=0.2)]
            width = h
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        return self.net(z).view(-1, *self.image_shape)


class MLPDiscriminator(Discriminator):
    def __init__(
        self, num_classes, conditional, image_shape, hidden=(512, 256), cond_mode="concat", sn=False
    ):
        super().__init__(num_classes, conditional, cond_mode, hidden[-1], sn)
        self.in_embed = (
            nn.Embedding(num_classes, num_classes) if conditional and cond_mode == "concat" else None
        )
        layers, width = [], math.prod(image_shape) + (num_classes if self.in_embed is not None else 0)
        for h in hidden:
            layers += [maybe_sn(nn.Linear(width, h), sn), nn.LeakyReLU(0.2)]
            width = h
        self.net = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_embed is not None:
            raise ValueError("mlp: a second head needs features without labels: use cond_mode projection")
        return self.net(x.flatten(1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if self.in_embed is not None:
            h = torch.cat([h, self.in_embed(labels)], 1)
        return self.project(self.net(h), labels)


@register_arch("mlp")
def build_mlp(
    image_shape,
    num_classes,
    conditional,
    latent_dim,
    cond_mode="concat",
    sn=False,
    g_hidden=(256, 512, 1024),
    d_hidden=(512, 256),
):
    g = MLPGenerator(latent_dim, num_classes, conditional, image_shape, tuple(g_hidden))
    d = MLPDiscriminator(num_classes, conditional, image_shape, tuple(d_hidden), cond_mode, sn)
    return g, d
