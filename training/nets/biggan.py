"""BigGAN-style networks (Brock et al. 2019), small: residual blocks, hierarchical latent, shared embedding.

G: the latent z is split into (stages + 1) equal chunks; chunk k >= 1 is concatenated with the shared
class embedding and feeds both conditional BatchNorms of up-block k (training.nets.layers.
ConditionalBatchNorm2d); chunk 0 with the shared embedding feeds the first linear layer ([c0, s, s]),
as in the paper's BigGAN-deep (chunk 0 alone, BigGAN's own first layer, learned more slowly in short
runs: docs/families-log.md). Up-block: cBN, ReLU, 2x nearest upsample, 3x3 conv, cBN, ReLU, 3x3 conv, plus
an upsampled 1x1-conv skip. Then BN, ReLU, 3x3 conv, tanh. D: residual down-blocks (ReLU, 3x3, ReLU,
3x3, 2x2 average pool, 1x1-conv skip), one block at the last size, ReLU, global sum pooling (or, with
`d_pool` False, the flattened map), an optional hidden layer (`d_hidden`), linear + projection (Miyato &
Koyama 2018). Spectral norm on every convolution and linear layer of both nets except the cBN gain /
bias layers (as in training/nets/sagan.py), orthogonal init of the convolutions, the first linear layer
and the shared embedding (BigGAN's settings; the projection head keeps training.nets.common's init).
Sizes: 28 -> 7-14-28, 32 -> 8-16-32, 64 -> 8-16-32-64 (training.nets.layers.image_plan).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import Discriminator, Generator, SumPool, hidden_layer, maybe_sn
from training.nets.layers import ConditionalBatchNorm2d, image_plan
from training.registry import register_arch


def ortho(layer: nn.Module, sn: bool) -> nn.Module:
    """Orthogonal init of the layer's weight (BigGAN's G_init / D_init 'ortho'), then spectral norm if asked."""
    nn.init.orthogonal_(layer.weight)
    return maybe_sn(layer, sn)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, sn: bool):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(cin, cond_dim)
        self.conv1 = ortho(nn.Conv2d(cin, cout, 3, 1, 1), sn)
        self.bn2 = ConditionalBatchNorm2d(cout, cond_dim)
        self.conv2 = ortho(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = ortho(nn.Conv2d(cin, cout, 1), sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(up2(torch.relu(self.bn1(x, cond))))
        h = self.conv2(torch.relu(self.bn2(h, cond)))
        return h + self.skip(up2(x))


class BigGANGenerator(Generator):
    def __init__(self, latent_dim, num_classes, conditional, image_shape, width=32, shared_dim=32, sn=True):
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        self.s, stages = image_plan(image_shape)
        if latent_dim % (stages + 1):
            raise ValueError(
                f"biggan: latent_dim {latent_dim} must split into {stages + 1} equal chunks "
                f"(one for the first layer, one per up-block) for {image_shape[1]} px images"
            )
        self.chunk = latent_dim // (stages + 1)
        chans = [width * 2 ** (stages - k) for k in range(stages + 1)]
        self.c0 = chans[0]
        self.shared = ortho(nn.Embedding(num_classes, shared_dim), False) if conditional else None
        cond_dim = self.chunk + (shared_dim if conditional else 0)
        self.fc = ortho(nn.Linear(cond_dim, self.c0 * self.s * self.s), sn)
        self.blocks = nn.ModuleList(
            UpBlock(a, b, cond_dim, sn) for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out_conv = ortho(nn.Conv2d(chans[-1], image_shape[0], 3, 1, 1), sn)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        chunks = z.split(self.chunk, 1)
        y = self.shared(labels) if self.shared is not None else None
        first = chunks[0] if y is None else torch.cat([y, chunks[0]], 1)
        h = self.fc(first).view(-1, self.c0, self.s, self.s)
        for block, zk in zip(self.blocks, chunks[1:], strict=True):
            h = block(h, zk if y is None else torch.cat([y, zk], 1))
        return torch.tanh(self.out_conv(torch.relu(self.out_bn(h))))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, sn: bool, down: bool = True, preact: bool = True):
        super().__init__()
        self.down, self.preact = down, preact
        self.conv1 = ortho(nn.Conv2d(cin, cout, 3, 1, 1), sn)
        self.conv2 = ortho(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = ortho(nn.Conv2d(cin, cout, 1), sn) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu(self.conv1(torch.relu(x) if self.preact else x)))
        skip = self.skip(x) if self.skip is not None else x
        if self.down:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class BigGANDiscriminator(Discriminator):
    def __init__(
        self, num_classes, conditional, image_shape, width=32, cond_mode="projection", sn=True, pool=True,
        hidden=0,
    ):  # fmt: skip
        s, stages = image_plan(image_shape)
        if conditional and cond_mode != "projection":
            raise ValueError(
                f"biggan: the discriminator conditions by projection only, got cond_mode {cond_mode!r}"
            )
        chans = [width * 2**k for k in range(stages)]
        trunk_dim = chans[-1] if pool else chans[-1] * s * s
        super().__init__(num_classes, conditional, cond_mode, hidden or trunk_dim, sn)
        ins = [image_shape[0], *chans[:-1]]
        blocks = [DownBlock(a, b, sn, preact=k > 0) for k, (a, b) in enumerate(zip(ins, chans, strict=True))]
        self.blocks = nn.Sequential(*blocks, DownBlock(chans[-1], chans[-1], sn, down=False))
        self.tail = nn.Sequential(SumPool() if pool else nn.Flatten(), *hidden_layer(trunk_dim, hidden, sn))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.tail(torch.relu(self.blocks(x))), labels)


@register_arch("biggan")
def build_biggan(
    image_shape, num_classes, conditional, latent_dim, cond_mode="projection", sn=True,
    g_width=32, d_width=32, shared_dim=32, g_sn=None, d_pool=True, d_hidden=0,
):  # fmt: skip
    """`g_sn` False keeps spectral norm off G only (None: as `sn`, the paper's SN in both networks);
    `d_pool` False flattens D's last map instead of the paper's global sum pooling; `d_hidden` N: a
    fully connected layer of N units before D's head."""
    g_sn = sn if g_sn is None else g_sn
    g = BigGANGenerator(latent_dim, num_classes, conditional, image_shape, g_width, shared_dim, g_sn)
    d = BigGANDiscriminator(num_classes, conditional, image_shape, d_width, cond_mode, sn, d_pool, d_hidden)
    return g, d
