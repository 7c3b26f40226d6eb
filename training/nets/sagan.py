"""SAGAN (Zhang et al. 2019) on the DCGAN trunk: self-attention at the 14/16 px stage of G and D.

Kept from the paper: the attention block (training.nets.layers.SelfAttention: 1x1 query / key /
value convolutions, max-pooled keys and values, a gate starting at 0), spectral norm on every layer
of both networks (not the per-class BatchNorm gain / bias tables, as in the paper's code: spectral norm
on them caps how far classes can differ), class-conditional BatchNorm in G and a projection
D when conditional. Scaled down: the DCGAN trunk (ConvTranspose / strided Conv stages, 28 -> 14 ->
7 or 32 -> 16 -> 8, plus 64 -> 32 for 64 px) instead of the paper's ResNet blocks, for CPU speed.
Trained by the classic family (training/families/gan.py) with the hinge loss and its TTUR rates,
since SAGAN's training procedure is that loop; only the networks differ. Those are the builder's
defaults; the `mnist-sagan` preset gives G the label by embedding and no spectral norm
(`g_cond`, `g_sn`), which learned faster at the CPU budget (docs/families-log.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.common import Discriminator, Generator, hidden_layer, maybe_sn
from training.nets.layers import ConditionalBatchNorm2d, SelfAttention, image_plan
from training.registry import register_arch

# How labels enter G: per-class BatchNorm gains / biases, or an embedding joined to z.
G_COND = ("cbn", "embed")
EMBED_DIM = 32  # the label embedding of g_cond 'embed' (the default preset's DCGAN G uses 32 too)


class SAGANGenerator(Generator):
    """z -> linear -> [c0, s, s] -> (BN, ReLU, ConvTranspose 2x) per stage -> tanh; attention after stage 1.

    Labels (`g_cond`): 'cbn' = class-conditional BatchNorm (the paper's), 'embed' = a 32-d label
    embedding concatenated to z and plain BatchNorm (the default preset's G conditioning).
    """

    def __init__(self, latent_dim, num_classes, conditional, image_shape, width=32, sn=True, g_cond="cbn"):
        super().__init__(latent_dim, num_classes, conditional, image_shape)
        if g_cond not in G_COND:
            raise ValueError(f"sagan: g_cond must be one of {', '.join(G_COND)}, got {g_cond!r}")
        self.s, stages = image_plan(image_shape)
        chans = [width * 2 ** (stages - k) for k in range(stages)] + [image_shape[0]]
        self.c0 = chans[0]
        self.cbn = conditional and g_cond == "cbn"
        self.embed = nn.Embedding(num_classes, EMBED_DIM) if conditional and g_cond == "embed" else None
        in_dim = latent_dim + (EMBED_DIM if self.embed is not None else 0)
        self.fc = maybe_sn(nn.Linear(in_dim, self.c0 * self.s * self.s), sn)
        self.norms = nn.ModuleList(
            ConditionalBatchNorm2d(c, num_classes, sn=False) if self.cbn else nn.BatchNorm2d(c)
            for c in chans[:-1]
        )
        self.ups = nn.ModuleList(
            maybe_sn(nn.ConvTranspose2d(a, b, 4, 2, 1), sn)
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.attn = SelfAttention(chans[1], sn)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cond = F.one_hot(labels, self.num_classes).to(z.dtype) if self.cbn else None
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.fc(z).view(-1, self.c0, self.s, self.s)
        for k, (norm, up) in enumerate(zip(self.norms, self.ups, strict=True)):
            h = up(torch.relu(norm(h, cond) if cond is not None else norm(h)))
            if k == 0:
                h = self.attn(h)
        return torch.tanh(h)


class SAGANDiscriminator(Discriminator):
    """Strided 4x4 convs (LeakyReLU 0.2), attention at the 14/16 px stage, flattened features -> logit
    (+ the projection term of Miyato & Koyama 2018 when conditional)."""

    def __init__(
        self, num_classes, conditional, image_shape, width=32, cond_mode="projection", sn=True, hidden=0
    ):
        s, stages = image_plan(image_shape)
        chans = [width * 2**k for k in range(stages)]
        if conditional and cond_mode != "projection":
            raise ValueError(
                f"sagan: the discriminator conditions by projection only, got cond_mode {cond_mode!r}"
            )
        trunk_dim = chans[-1] * s * s
        super().__init__(num_classes, conditional, cond_mode, hidden or trunk_dim, sn)
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip([image_shape[0], *chans[:-1]], chans, strict=True)):
            layers += [maybe_sn(nn.Conv2d(a, b, 4, 2, 1), sn), nn.LeakyReLU(0.2)]
            if k == stages - 2:  # this conv's output is the 14/16 px map
                layers.append(SelfAttention(b, sn))
        self.net = nn.Sequential(*layers, nn.Flatten(), *hidden_layer(trunk_dim, hidden, sn))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.net(x), labels)


@register_arch("sagan")
def build_sagan(
    image_shape,
    num_classes,
    conditional,
    latent_dim,
    cond_mode="projection",
    sn=True,
    g_width=32,
    d_width=32,
    g_sn=None,
    g_cond="cbn",
    d_hidden=0,
):
    """`g_sn` False keeps spectral norm off G only (None: as `sn`, the paper's SN in both networks);
    `g_cond` see SAGANGenerator; `d_hidden` N: a fully connected layer of N units before D's head."""
    g_sn = sn if g_sn is None else g_sn
    g = SAGANGenerator(latent_dim, num_classes, conditional, image_shape, g_width, g_sn, g_cond)
    d = SAGANDiscriminator(num_classes, conditional, image_shape, d_width, cond_mode, sn, d_hidden)
    return g, d
