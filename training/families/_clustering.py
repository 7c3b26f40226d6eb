"""The clustering phase two families share (infogan's clusterer, selfcond): a frozen-after-training
clusterer (training/nets/clusterer.py) learns the reals' clusters by IIC before G and D train.

Not a family (the leading underscore keeps training.registry from importing it as one)."""

from __future__ import annotations

import torch
from pydantic import Field

from training.distributed import mean_across_ranks
from training.families._iic import iic_loss, random_affine
from training.families.base import Phase, StepContext
from training.families.common import adam
from training.families.params import FamilySettings
from training.nets.clusterer import Clusterer


class ClustererSettings(FamilySettings):
    """The clusterer's family_params (the family adds `cluster_steps`, how long it trains)."""

    cluster_heads: int = Field(
        15, ge=1, description="the clusterer's K-way heads (as many over-clustering heads)"
    )
    cluster_overcluster: int = Field(50, ge=0, description="the over-clustering heads' size (0 = none)")
    cluster_views: int = Field(4, ge=1, description="warped copies of each real image per clustering step")
    cluster_lamb: float = Field(1.5, gt=0, description="IIC's marginal-entropy weight (_iic.iic_loss)")
    cluster_lr: float = Field(1e-3, gt=0, description="the clusterer's Adam (0.9, 0.999) learning rate")
    cluster_width: int = Field(32, ge=1, description="the clusterer's first conv width")
    cluster_trunks: int = Field(
        1,
        ge=1,
        le=8,
        description="clusterer trunks raced on the same batches; after cluster_pick_after steps only the "
        "trunk of the lowest-loss head trains on (training/nets/clusterer.py)",
    )
    cluster_pick_after: int = Field(
        300, ge=1, description="clustering steps before the trunks' race is decided"
    )


def build_clusterer(shape: tuple[int, int, int], k: int, p: ClustererSettings) -> Clusterer:
    return Clusterer(
        shape,
        k,
        p.cluster_heads,
        p.cluster_overcluster,
        p.cluster_width,
        p.cluster_trunks,
        p.cluster_pick_after,
    )


class ClusteringPhase:
    """What a family whose first `p.cluster_steps` steps train only its clusterer (nets["c"]) adds to its
    base class (list it first): the schedule, the clustering phase, the clusterer's optimiser and the quick
    evaluation's caveat. Its settings `p` are ClustererSettings with `cluster_steps` (0 = no clusterer)."""

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.clustering = self.p.cluster_steps > 0  # set per step by schedule()

    def schedule(self, step: int) -> None:
        self.clustering = step < self.p.cluster_steps

    def phases(self) -> list[Phase]:
        """The clusterer alone for `cluster_steps` steps, then the base class's phases."""
        return [Phase("cluster", self.cluster_step)] if self.clustering else super().phases()

    def clusterer_optimizer(self) -> torch.optim.Optimizer:
        return adam(self.cfg, self.nets["c"].parameters(), self.p.cluster_lr, betas=(0.9, 0.999))

    def cluster_step(self, ctx: StepContext) -> dict[str, float]:
        """IIC on a real batch and `cluster_views` warped copies of it: every head of the clusterer (its
        forward pass through ctx.nets["c"])."""
        p, clusterer = self.p, self.nets["c"]
        real, _ = ctx.next_batch()  # labels unused
        n, views = real.shape[0], p.cluster_views
        warped = random_affine(real.repeat(views, 1, 1, 1), ctx.noise)
        with ctx.autocast():
            heads = ctx.nets["c"](torch.cat([real, warped]))
            terms = torch.stack([iic_loss(h[:n].repeat(views, 1), h[n:], lamb=p.cluster_lamb) for h in heads])
        self.optimize("c", terms.sum())
        # every rank must read the same head: it is picked by the losses averaged over the ranks
        clusterer.record(torch.tensor(mean_across_ranks(terms.tolist())))
        return {"iic": clusterer.loss_avg[clusterer.best_head()].item()}  # the best head's running loss

    def eval_caveat(self) -> str | None:
        if self.clustering:
            return f"clustering the reals until step {self.p.cluster_steps}: G has not trained yet"
        return None
