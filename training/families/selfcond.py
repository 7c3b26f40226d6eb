"""Self-conditioned GAN (Liu et al. 2020): an unconditional GAN that conditions itself on clusters of the reals.

No label is read. For `cluster_steps` steps only a clusterer trains (training/nets/clusterer.py, by
IIC on the reals and warped copies of them, as InfoGAN's); then it is frozen, and G and D train as the
class-conditional pair of the registered architecture (G embeds a cluster, D projects it) with the
clusterer's cluster of each real image in the place of its label. In the D step each fake is drawn
for the cluster of the real image beside it (so the clusters come at the reals' own frequencies, as
Liu et al. sample them); in the G step for a uniform cluster. Any registered loss, with its paper's
optimiser, critic steps and spectral-norm default: the classic family's phases after the clustering.

Liu et al. re-cluster D's features by k-means every few epochs; here the clusterer is a network of its
own, trained once, because a dedicated BatchNorm trunk learns MNIST's digits in about 1,000 steps
while D's trunk is shaped by the game (docs/families-log.md). The card declares z and the categorical
`cluster` input; `gan evaluate` measures which class each cluster draws (code_classes).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from gan_core.card import InputSpec, latent_input
from gan_core.errors import UserError
from training.config import TrainConfig
from training.families._clustering import ClustererSettings, ClusteringPhase, build_clusterer
from training.families.base import StepContext
from training.families.common import learned_code_input, rows_grid
from training.families.gan import AdversarialFamily
from training.families.terms import paired
from training.registry import get_arch, register_family


class SelfCondSettings(ClustererSettings):
    """family_params of the selfcond family."""

    clusters: int = Field(10, ge=2, description="clusters of the reals: the classes G draws and D projects")
    cluster_name: str = Field("cluster", min_length=1, description="the card's name of the cluster input")
    cluster_steps: int = Field(
        1000,
        ge=1,
        description="steps that train only the clusterer, before G and D (which then read its best head)",
    )


@register_family("selfcond")
class SelfConditionedFamily(ClusteringPhase, AdversarialFamily):
    """The classic family's G and D, conditioned on a frozen clusterer's clusters (see module doc)."""

    settings_model = SelfCondSettings
    p: SelfCondSettings

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.conditional:
            raise UserError("selfcond reads no labels: conditional must be false (the clusters replace them)")
        return super().resolve(cfg)

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        cfg, k, shape = self.cfg, self.p.clusters, tuple(self.data.image_shape)
        g, d = get_arch(cfg.arch)(
            shape, k, True, cfg.latent_dim, cond_mode=cfg.cond_mode, sn=cfg.spectral_norm, **cfg.arch_params
        )
        return {"g": g, "d": d, "c": build_clusterer(shape, k, self.p)}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = super().build_optimizers()
        opts["c"] = self.clusterer_optimizer()
        return opts

    # ---- the classic D and G phases (after ClusteringPhase's), fed the clusters -------------
    def d_inputs(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real images, the clusterer's cluster of each, latents): the fakes are drawn for those clusters."""
        real, _ = ctx.next_batch()  # labels unused
        z = torch.randn(real.shape[0], self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        return real, self.nets["c"].labels(real), z

    def g_inputs(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents, uniform clusters); with the mode-seeking term, pairs (i, i + n/2) share a cluster."""
        n = self.cfg.batch_size
        z = torch.randn(n, self.cfg.latent_dim, generator=ctx.noise).to(ctx.device)
        clusters = torch.randint(0, self.p.clusters, (n,), generator=ctx.noise).to(ctx.device)
        paired(self.cfg.diversity_weight, clusters)
        return z, clusters

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        cluster = learned_code_input(self.p.cluster_name, self.p.clusters, "cluster of the training images")
        return [latent_input(self.cfg.latent_dim), cluster]

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        """z and the clusters in turn (every cluster equally often)."""
        return [
            torch.randn(n, self.cfg.latent_dim, generator=gen),
            (torch.arange(n) + batch * n) % self.p.clusters,
        ]

    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        """Fixed latents, one row per cluster (up to 16)."""
        return rows_grid(lambda z, k, gen: g(z, k), self.cfg.latent_dim, self.p.clusters, True, device)

    def card_variant(self) -> str:
        return f"selfcond-{self.cfg.loss}"

    def card_arch_params(self) -> dict:
        return {
            **super().card_arch_params(),
            "clusters": self.p.clusters,
            "cluster_steps": self.p.cluster_steps,
        }
