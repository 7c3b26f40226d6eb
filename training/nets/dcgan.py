"""DCGAN (Radford et al. 2016) for square 28, 32 and 64 px images with any channel count, optionally conditional.

G: z (+ label embedding) -> linear -> [c0, s, s] -> ConvTranspose(4, 2, 1) x n -> image, BatchNorm +
ReLU, tanh out. The base map is s = 7 for 28 px and 8 for 32 and 64 px; n = 2 up-samplings for 28/32
px (c0 = 4 x width) and 3 for 64 px (c0 = 8 x width); each halves the channels down to 2 x width.
D mirrors it: n strided convs (LeakyReLU 0.2, width doubling; `d_bn`: Radford et al.'s BatchNorm after
every conv but the first, real and fake normalised apart) -> linear; labels enter as one-hot
input planes ('concat') or through a projection head. For 28/32 px the modules are created in the
same order with the same shapes as the original two-layer networks, so seeded weights are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import (
    Discriminator,
    Generator,
    GroupBatchNorm2d,
    MinibatchStd,
    SumPool,
    hidden_layer,
    maybe_sn,
)
from training.registry import register_arch

# image side -> (base map side s, stride-2 layers n): side = s * 2**n
SIZES = {28: (7, 2), 32: (8, 2), 64: (8, 3)}


def layout(image_shape) -> tuple[int, int]:
    """(base map side, stride-2 layers) of a square image side in SIZES; other sizes are refused."""
    c, h, w = image_shape
    if h != w or h not in SIZES:
        raise ValueError(f"dcgan supports square 28, 32 and 64 px images, got {h}x{w}")
    return SIZES[h]


class DCGANGenerator(Generator):
    def __init__(self, latent_dim, num_classes, conditional, image_shape, width=64, embed_dim=32):
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        self.s, n_up = layout(image_shape)
        self.c0 = width * 2**n_up
        self.embed = nn.Embedding(num_classes, embed_dim) if conditional else None
        in_dim = latent_dim + (embed_dim if conditional else 0)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, self.c0 * self.s * self.s, bias=False),
            nn.BatchNorm1d(self.c0 * self.s * self.s),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        ch = self.c0
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, image_shape[0], 4, 2, 1), nn.Tanh()]
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.fc(z).view(-1, self.c0, self.s, self.s)
        return self.up(h)


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
        bn=0,
        hidden=0,
    ):
        s, n_down = layout(image_shape)
        top = width * 2 ** (n_down - 1)  # channels of the last strided conv
        # pool=True: a 3x3 conv then global sum pooling (SNGAN-style head), so the projection
        # term compares labels with 2*top pooled features instead of a flattened feature map.
        trunk_dim = top * 2 if pool else top * s * s
        super().__init__(num_classes, conditional, cond_mode, hidden or trunk_dim, sn)
        extra = num_classes if conditional and cond_mode == "concat" else 0
        tail = (
            [maybe_sn(nn.Conv2d(top, top * 2, 3, 1, 1), sn), nn.LeakyReLU(0.2), SumPool()]
            if pool
            else [nn.Flatten()]
        )
        tail += hidden_layer(trunk_dim, hidden, sn)  # measured: it helps spectral-norm D's, not plain ones
        layers: list[nn.Module] = [
            maybe_sn(nn.Conv2d(image_shape[0] + extra, width, 4, 2, 1), sn),
            nn.LeakyReLU(0.2),
            *([MinibatchStd(mbstd)] if mbstd else []),
        ]
        ch_in, ch = width + (1 if mbstd else 0), width
        for _ in range(n_down - 1):
            norm = [GroupBatchNorm2d(ch * 2, bn)] if bn else []
            layers += [maybe_sn(nn.Conv2d(ch_in, ch * 2, 4, 2, 1, bias=not bn), sn), *norm, nn.LeakyReLU(0.2)]
            ch_in = ch = ch * 2
        self.net = nn.Sequential(*layers, *tail)

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
    d_bn=0,
    d_hidden=0,
):
    g = DCGANGenerator(latent_dim, num_classes, conditional, image_shape, g_width, embed_dim)
    d = DCGANDiscriminator(
        num_classes, conditional, image_shape, d_width, cond_mode, sn, mbstd, d_pool, d_bn, d_hidden
    )
    return g, d
