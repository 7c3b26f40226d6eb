"""A small CNN that clusters images without labels (IIC's ClusterNet, Ji et al. 2019, scaled down).

InfoGAN's clusterer (training/families/infogan.py, `cluster_steps`): a trunk of stride-2 convolutions
with BatchNorm, one fully connected layer, then `heads` K-way heads and as many over-clustering heads,
all trained by IIC on real images and warped copies of them. Several K-way heads on one trunk settle
on different clusterings; the one with the lowest IIC loss (a running average kept in a buffer, so it
is checkpointed with the weights) is the one whose labels are read, as IIC picks its sub-head.

Why a network of its own rather than IIC heads on D's trunk: the discriminator's spectrally normalised
trunk is shaped by the adversarial game; a dedicated BatchNorm trunk learns MNIST's digits as clusters
(~97% of the test digits one-to-one) in about 1,000 steps of batch 64 (docs/families-log.md).
"""

from __future__ import annotations

import torch
from torch import nn

from training.nets.dcgan import layout

LOSS_AVG_DECAY = 0.98  # running average of each head's IIC loss (about the last 50 steps)


class Clusterer(nn.Module):
    def __init__(
        self,
        image_shape: tuple[int, int, int],
        k: int,
        heads: int = 15,
        overcluster: int = 50,
        width: int = 32,
    ):
        super().__init__()
        side, n_down = layout(image_shape)  # DCGAN's sizes: 28 -> 7, 32 -> 8 (2 layers), 64 -> 8 (3 layers)
        layers: list[nn.Module] = []
        ch_in, ch = image_shape[0], width
        for i in range(n_down):
            norm = [nn.BatchNorm2d(ch)] if i else []  # no BatchNorm on the first layer (DCGAN's rule)
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=not norm), *norm, nn.LeakyReLU(0.2)]
            ch_in, ch = ch, ch * 2
        hidden = 8 * width
        self.trunk = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(ch_in * side * side, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(0.2),
        )
        self.k = k
        self.heads = nn.ModuleList(nn.Linear(hidden, k) for _ in range(heads))
        self.over = nn.ModuleList(nn.Linear(hidden, overcluster) for _ in range(heads if overcluster else 0))
        self.register_buffer("loss_avg", torch.zeros(heads))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head: the K-way heads first, then the over-clustering heads."""
        h = self.trunk(x)
        return [m(h) for m in (*self.heads, *self.over)]

    @torch.no_grad()
    def record(self, head_losses: torch.Tensor) -> None:
        """Fold this step's IIC losses of the K-way heads into their running averages."""
        first = self.updates.item() == 0
        self.loss_avg.copy_(head_losses if first else torch.lerp(head_losses, self.loss_avg, LOSS_AVG_DECAY))
        self.updates += 1

    def best_head(self) -> int:
        """The K-way head with the lowest running IIC loss."""
        return int(self.loss_avg.argmin())

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """The best head's cluster of each image [N] (int64); BatchNorm in eval mode (running statistics)."""
        was = self.training
        self.eval()
        h = self.trunk(x)
        self.train(was)
        return self.heads[self.best_head()](h).argmax(1)
