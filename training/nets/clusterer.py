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


def _branch(
    image_shape: tuple[int, int, int], k: int, heads: int, overcluster: int, width: int
) -> tuple[nn.Sequential, nn.ModuleList, nn.ModuleList]:
    """One trunk with its K-way and over-clustering heads."""
    side, n_down = layout(image_shape)  # DCGAN's sizes: 28 -> 7, 32 -> 8 (2 layers), 64 -> 8 (3 layers)
    layers: list[nn.Module] = []
    ch_in, ch = image_shape[0], width
    for i in range(n_down):
        norm = [nn.BatchNorm2d(ch)] if i else []  # no BatchNorm on the first layer (DCGAN's rule)
        layers += [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=not norm), *norm, nn.LeakyReLU(0.2)]
        ch_in, ch = ch, ch * 2
    hidden = 8 * width
    trunk = nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(ch_in * side * side, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.LeakyReLU(0.2),
    )
    kway = nn.ModuleList(nn.Linear(hidden, k) for _ in range(heads))
    over = nn.ModuleList(nn.Linear(hidden, overcluster) for _ in range(heads if overcluster else 0))
    return trunk, kway, over


class Rival(nn.Module):
    """A second (third, ...) trunk with its heads, trained beside the first until the pick."""

    def __init__(self, *branch_args):
        super().__init__()
        self.trunk, self.heads, self.over = _branch(*branch_args)


class Clusterer(nn.Module):
    """`trunks` > 1: as many trunks (each with its heads) train side by side on the same batches for
    `pick_after` updates; then only the trunk of the lowest-loss head trains on and is read. A trunk's
    start decides where IIC settles: a bad start leaves every head of its trunk at a poor clustering
    (on MNIST ~70% purity on one seed in three), and its running loss already stands apart after a few
    hundred steps (docs/families-log.md), so racing a few trunks briefly is cheaper than a bad clustering.
    The first trunk keeps the one-trunk clusterer's module names (its checkpoints load as they were);
    a retired trunk's heads hold +inf in `loss_avg`, so the choice is checkpointed with the weights."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        k: int,
        heads: int = 15,
        overcluster: int = 50,
        width: int = 32,
        trunks: int = 1,
        pick_after: int = 300,
    ):
        super().__init__()
        args = (image_shape, k, heads, overcluster, width)
        self.trunk, self.heads, self.over = _branch(*args)
        self.rivals = nn.ModuleList(Rival(*args) for _ in range(trunks - 1))
        self.k, self.n_heads, self.pick_after = k, heads, pick_after
        self.register_buffer("loss_avg", torch.zeros(heads * trunks))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def branches(self) -> list[nn.Module]:
        return [self, *self.rivals]

    def alive(self) -> list[int]:
        """The trunks still training (all of them until the pick, then the chosen one)."""
        return [b for b in range(len(self.branches())) if torch.isfinite(self.loss_avg[b * self.n_heads])]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every head of each live trunk, trunk by trunk: its K-way heads, then its
        over-clustering heads."""
        out, branches = [], self.branches()
        for b in self.alive():
            branch = branches[b]
            h = branch.trunk(x)
            out += [m(h) for m in (*branch.heads, *branch.over)]
        return out

    @torch.no_grad()
    def record(self, losses: torch.Tensor) -> None:
        """Fold this step's IIC losses (every head forward() returned, in its order) into the K-way
        heads' running averages; at update `pick_after`, retire every trunk but the best head's."""
        alive = self.alive()
        per_branch = len(losses) // len(alive)
        first = self.updates.item() == 0
        for i, b in enumerate(alive):
            new = losses[i * per_branch : i * per_branch + self.n_heads].to(self.loss_avg)
            avg = self.loss_avg[b * self.n_heads : (b + 1) * self.n_heads]
            avg.copy_(new if first else torch.lerp(new, avg, LOSS_AVG_DECAY))
        self.updates += 1
        if len(alive) > 1 and self.updates.item() >= self.pick_after:
            keep = self.best_head() // self.n_heads
            for b in alive:
                if b != keep:
                    self.loss_avg[b * self.n_heads : (b + 1) * self.n_heads] = float("inf")

    def best_head(self) -> int:
        """The K-way head with the lowest running IIC loss (numbered trunk by trunk)."""
        return int(self.loss_avg.argmin())

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """The best head's cluster of each image [N] (int64); BatchNorm in eval mode (running statistics)."""
        branch_index, head = divmod(self.best_head(), self.n_heads)
        branch = self.branches()[branch_index]
        was = self.training
        self.eval()
        h = branch.trunk(x)
        self.train(was)
        return branch.heads[head](h).argmax(1)
