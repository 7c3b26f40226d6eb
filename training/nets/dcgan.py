"""DCGAN (Radford et al. 2016) sized for 28x28 and 32x32 images, optionally class-conditional.

G: z (+ label embedding) -> linear -> [4c, s, s] -> ConvTranspose x2 -> image, BatchNorm + ReLU,
tanh out; s = 7 for 28x28, 8 for 32x32. D: two strided convs (LeakyReLU 0.2) -> linear; labels
enter as one-hot input planes ('concat') or through a projection head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import Discriminator, Generator, MinibatchStd, maybe_sn
from training.registry import register_arch


def _base_size(image_shape) -> int:
    c, h, w = image_shape
    if h != w or h not in (28, 32):
        raise ValueError(f"dcgan supports 28x28 and 32x32 images, got {h}x{w}")
    return h // 4


class DCGANGenerator(Generator):
    def __init__(self, latent_dim, num_classes, conditional, image_shape, width=64, embed_dim=32):
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        self.s = _base_size(image_shape)
        c4, c2 = width * 4, width * 2
        self.embed = nn.Embedding(num_classes, embed_dim) if conditional else None
        in_dim = latent_dim + (embed_dim if conditional else 0)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, c4 * self.s * self.s, bias=False),
            nn.BatchNorm1d(c4 * self.s * self.s),
            nn.ReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c4, c2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, image_shape[0], 4, 2, 1),
            nn.Tanh(),
        )
        self.c4 = c4

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.fc(z).view(-1, self.c4, self.s, self.s)
        return self.up(h)


class SumPool(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.sum((2, 3))


class DCGANDiscriminator(Discriminator):
    def __init__(
        self,
        num_classes,
        conditional,
        image_shape,
        width=64,
        cond_mode="projection",
        sn=False,
        mbstd=0,
        pool=False,
    ):
        s = _base_size(image_shape)
        # pool=True: a third conv then global sum pooling (SNGAN-style head), so the projection
        # term compares labels with 4*width pooled features instead of a flattened feature map.
        super().__init__(num_classes, conditional, cond_mode, width * 4 if pool else width * 2 * s * s, sn)
        extra = num_classes if conditional and cond_mode == "concat" else 0
        tail = (
            [maybe_sn(nn.Conv2d(width * 2, width * 4, 3, 1, 1), sn), nn.LeakyReLU(0.2), SumPool()]
            if pool
            else [nn.Flatten()]
        )
        self.net = nn.Sequential(
            maybe_sn(nn.Conv2d(image_shape[0] + extra, width, 4, 2, 1), sn),
            nn.LeakyReLU(0.2),
            *([MinibatchStd(mbstd)] if mbstd else []),
            maybe_sn(nn.Conv2d(width + (1 if mbstd else 0), width * 2, 4, 2, 1), sn),
            nn.LeakyReLU(0.2),
            *tail,
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional and self.cond_mode == "concat":
            planes = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, x.shape[2], x.shape[3])], 1)
        return self.project(self.net(x), labels)


@register_arch("dcgan")
def build_dcgan(
    image_shape,
    num_classes,
    conditional,
    latent_dim,
    cond_mode="projection",
    sn=False,
    g_width=64,
    d_width=64,
    embed_dim=32,
    mbstd=0,
    d_pool=False,
):
    g = DCGANGenerator(latent_dim, num_classes, conditional, image_shape, g_width, embed_dim)
    d = DCGANDiscriminator(num_classes, conditional, image_shape, d_width, cond_mode, sn, mbstd, d_pool)
    return g, d
