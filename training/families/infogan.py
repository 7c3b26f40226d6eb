"""InfoGAN (Chen et al. 2016): latent codes the generator must make recoverable from its images.

Unsupervised: the data's labels are never used. G takes noise z, one categorical code (10 values
on MNIST) and continuous codes (uniform [-1, 1]); a Q head on the discriminator's trunk predicts
the codes from a generated image, and the mutual-information lower bound L_I (cross-entropy for
the categorical code, Gaussian NLL with predicted mean and variance for the continuous ones) is
added to both players' losses: the D step trains the trunk and Q on it, the G step trains G and Q
(the paper's setup). Weights lambda 1 (categorical) and 0.1 (continuous) as for the paper's MNIST run.

Networks reuse the registered architectures: G is the class-conditional generator with the
categorical code in place of the label (an embedding concatenated to [z, c]); D is the unconditional
discriminator whose trunk features also feed Q (FC - BatchNorm - LeakyReLU - FC, as in the paper).
The card declares z, the categorical code and the continuous codes; the exported module takes
them in that order. Beyond the paper (InfoGANSettings, measured in docs/families-log.md), a
clusterer network learns the reals' clusters by IIC before G trains, and D projects its cluster for
each real image while it projects G's code for each fake (`cluster_steps` with `self_condition`: the
mnist-infogan preset), so the categorical code takes the digit.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gan_core.card import InputSpec, latent_input
from gan_core.errors import UserError
from gan_core.imaging import float_to_uint8
from training.config import TrainConfig
from training.families._clustering import ClustererSettings, ClusteringPhase, build_clusterer
from training.families.base import DataInfo, StepContext
from training.families.common import GRID_SEED, learned_code_input, make_optimizer
from training.families.gan import AdversarialFamily
from training.families.terms import aux_loss, paired, with_mode_seeking
from training.nets.heads import TwoHeadDiscriminator
from training.registry import get_arch, register_family


class InfoGANSettings(ClustererSettings):
    """family_params of the infogan family (defaults: the paper's MNIST run, no clusterer)."""

    categorical: int = Field(10, ge=2, description="values of the categorical code")
    categorical_name: str = Field(
        "digit", min_length=1, description="the card's name of the categorical code"
    )
    continuous: list[str] = Field(
        ["c1", "c2"], description="names of the continuous codes (uniform on [-1, 1]), one per code"
    )
    lambda_cat: float = Field(1.0, ge=0, description="weight of L_I's categorical term")
    lambda_cont: float = Field(0.1, ge=0, description="weight of L_I's continuous term")
    q_hidden: int = Field(128, ge=1, description="width of Q's hidden layer")
    self_condition: bool = Field(
        False,
        description="D projects the categorical code: the one G was given for a fake and, for a real image, "
        "the clusterer's cluster (with cluster_steps) or else Q's argmax (as Liu et al. 2020's "
        "self-conditioned GAN, with Q as the clusterer), so each code's images are asked to look like the "
        "reals filed under it; no label is used",
    )
    cluster_steps: int = Field(
        0,
        ge=0,
        description="steps that train only a clusterer of its own (training/nets/clusterer.py), by IIC on "
        "the reals and `cluster_views` warped copies of them (no label is read); then it is frozen and G "
        "and D train, D projecting its best head's cluster of each real image (needs self_condition; "
        "0 = no clusterer)",
    )


CONT_RANGE = (-1.0, 1.0)


class QHead(nn.Module):
    """Q(c | x) from the discriminator's trunk features: FC - BatchNorm - LeakyReLU - FC (the paper's)."""

    def __init__(self, feat_dim: int, hidden: int, n_cat: int, n_cont: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feat_dim, hidden, bias=False),  # BatchNorm follows
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(0.1),
            nn.Linear(hidden, n_cat + 2 * n_cont),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[N, K + 2M]: the categorical logits, the continuous codes' means and log-variances."""
        return self.net(h)


class InfoGenerator(nn.Module):
    """The exported module: (z, categorical code, continuous codes...) -> images, the card's input order."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g

    def forward(self, z: torch.Tensor, cat: torch.Tensor, *cont: torch.Tensor) -> torch.Tensor:
        return self.g(torch.cat([z, *(c[:, None] for c in cont)], 1), cat)

    def with_rewritten(self, rewrite) -> nn.Module | None:
        """The same wrapper around rewrite(g) (the exporter's faster form of the generator), or None."""
        fast = rewrite(self.g)
        return None if fast is None else InfoGenerator(fast).train(self.training)


def info_loss(
    q: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor, lambda_cat: float, lambda_cont: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weighted L_I, categorical term, continuous Gaussian NLL) of Q's outputs.

    q: [N, K + 2M] = K categorical logits (raw: cross_entropy applies the log-softmax), then M means
    and M log-variances of the continuous codes. Minimising L_I maximises the lower bound on I(c; G(z, c)).
    """
    k, m = q.shape[1] - 2 * cont.shape[1], cont.shape[1]
    ce = aux_loss(q[:, :k], cat)
    if m == 0:
        return lambda_cat * ce, ce, ce.new_zeros(())
    mean, logvar = q[:, k : k + m], q[:, k + m :].clamp(-8.0, 8.0)
    nll = F.gaussian_nll_loss(mean, cont, logvar.exp(), full=True, reduction="none").sum(1).mean()
    return lambda_cat * ce + lambda_cont * nll, ce, nll


@register_family("infogan")
class InfoGANFamily(ClusteringPhase, AdversarialFamily):
    """G, D with a Q head, trained on the adversarial loss plus lambda * L_I (see module doc); the
    loss, its paper defaults and the phases are the classic family's."""

    diffaugments = False  # its own D / G steps do not apply DiffAugment (yet)
    settings_model = InfoGANSettings
    p: InfoGANSettings

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.n_cat, self.cont_names = self.p.categorical, list(self.p.continuous)
        self.cluster_steps = self.p.cluster_steps

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.conditional:
            raise UserError("infogan is unsupervised: conditional must be false (the codes replace labels)")
        cfg = super().resolve(cfg)
        if cfg.family_params["cluster_steps"] and not cfg.family_params["self_condition"]:
            raise UserError(
                "family_params.cluster_steps: needs self_condition: true (D projects the clusters)"
            )
        return cfg

    # ---- networks -----------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        cfg, shape = self.cfg, tuple(self.data.image_shape)
        arch = get_arch(cfg.arch)
        g, _ = arch(
            shape, self.n_cat, True, cfg.latent_dim + len(self.cont_names), sn=False, **cfg.arch_params
        )
        # self_condition: D projects the categorical code (see InfoGANSettings); else it is unconditional
        cond = self.p.self_condition
        d_classes, d_cond = (self.n_cat, {"cond_mode": "projection"}) if cond else (self.data.num_classes, {})
        _, d = arch(shape, d_classes, cond, cfg.latent_dim, sn=cfg.spectral_norm, **d_cond, **cfg.arch_params)
        p = self.p
        q = partial(QHead, hidden=p.q_hidden, n_cat=self.n_cat, n_cont=len(self.cont_names))
        nets = {"g": g, "d": TwoHeadDiscriminator(d, q)}
        if self.cluster_steps:
            nets["c"] = build_clusterer(shape, self.n_cat, p)
        return nets

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg, g, d = self.cfg, self.nets["g"], self.nets["d"]
        # Q is trained by both steps: with D's trunk in the D step, with G in the G step.
        opts = {
            "g": make_optimizer(cfg, [*g.parameters(), *d.aux.parameters()], cfg.lr_g),
            "d": make_optimizer(cfg, d.parameters(), cfg.lr_d),
        }
        if self.cluster_steps:
            opts["c"] = self.clusterer_optimizer()
        return opts

    # ---- the classic D and G phases (after ClusteringPhase's) -------------------------------
    def draw_codes(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z [N, latent], categorical [N], continuous [N, M]) from the training noise generator."""
        z = torch.randn(n, self.cfg.latent_dim, generator=gen)
        cat = torch.randint(0, self.n_cat, (n,), generator=gen)
        cont = torch.rand(n, len(self.cont_names), generator=gen) * 2.0 - 1.0
        return z, cat, cont

    def _info(self, q: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor):
        """(weighted L_I, categorical term, continuous NLL) of Q's outputs for codes (cat, cont)."""
        return info_loss(q.float(), cat, cont, self.p.lambda_cat, self.p.lambda_cont)

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, _ = ctx.next_batch()  # labels unused: InfoGAN is unsupervised
        n = real.shape[0]
        z, cat, cont = (t.to(ctx.device) for t in self.draw_codes(n, ctx.noise))
        with ctx.autocast():
            with torch.no_grad():
                fake = G(torch.cat([z, cont], 1), cat)
            guess = label_fn = labels = real_labels = None
            if self.cluster_steps:  # reals: the clusterer's cluster; fakes: G's code
                real_labels = self.nets["c"].labels(real)
                labels = torch.cat([real_labels, cat])
            elif self.p.self_condition:  # reals: Q's guess of their code; fakes: G's code
                guess = self.real_codes
                label_fn = lambda q: torch.cat([guess(q[:n]), cat])  # noqa: E731
            out, q = D(torch.cat([real, fake.to(real.dtype)]), labels, label_fn=label_fn)
            out = out.float()
            adv = self.loss.d_loss(out[:n], out[n:])
            pen = self.penalty(ctx, lambda x, y: D(x, y, label_fn=guess)[0], real, fake.float(), real_labels)
            info, ce, nll = self._info(q[n:], cat, cont)
            loss = adv + info + (pen if pen is not None else 0.0)
        self.optimize("d", loss)
        self.loss.after_d_step(self.nets["d"].d)
        return {"d_loss": adv.item(), "info_cat": ce.item(), "info_cont": nll.item()}

    def real_codes(self, q: torch.Tensor) -> torch.Tensor:
        """The code D projects for real images (self_condition without a clusterer): Q's argmax."""
        return q[:, : self.n_cat].argmax(1)

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        cfg, G, D = self.cfg, ctx.nets["g"], ctx.nets["d"]
        n = cfg.batch_size
        z, cat, cont = self.draw_codes(n, ctx.noise)
        diversity = cfg.diversity_weight
        paired(diversity, cat, cont)  # pairs (i, i + n/2) share their codes and differ in z only
        z, cat, cont = z.to(ctx.device), cat.to(ctx.device), cont.to(ctx.device)
        with ctx.autocast():
            fake = G(torch.cat([z, cont], 1), cat)
            out, q = D(fake, cat if self.p.self_condition else None)
            adv = self.loss.g_loss(out.float())
            info, _, _ = self._info(q, cat, cont)
            loss = with_mode_seeking(adv + info, diversity, fake, z)
        self.optimize("g", loss)
        return {"g_loss": adv.item(), "g_info": info.item()}

    # ---- inference ----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        n_cat = self.n_cat
        return [
            latent_input(self.cfg.latent_dim),
            learned_code_input(self.p.categorical_name, n_cat, "InfoGAN categorical code"),
            *(
                InputSpec(
                    name=name, kind="continuous", dtype="float32", range=CONT_RANGE, distribution="uniform",
                    description=f"InfoGAN continuous code {k + 1} of {len(self.cont_names)}, uniform on "
                    "[-1, 1] in training (on MNIST: a style such as slant or stroke width)",
                )
                for k, name in enumerate(self.cont_names)
            ),
        ]  # fmt: skip

    def inference_module(self, g: nn.Module) -> nn.Module:
        return InfoGenerator(g).train(g.training)

    def recalibration_inputs(self, batch: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
        z, _, cont = self.draw_codes(n, gen)
        cat = (torch.arange(n) + batch * n) % self.n_cat  # balanced codes
        return [torch.cat([z, cont], 1), cat]

    @torch.no_grad()
    def grid(self, g: nn.Module, device: torch.device) -> tuple[np.ndarray, int]:
        """One row per categorical value (up to 16), columns = fixed noise and continuous codes."""
        gen = torch.Generator().manual_seed(GRID_SEED)
        rows, ncols = min(self.n_cat, 16), 10
        z, _, cont = self.draw_codes(ncols, gen)
        cat = torch.arange(rows).repeat_interleave(ncols)
        args = [z.repeat(rows, 1), cat, *cont.repeat(rows, 1).unbind(1)]
        x = g(*[a.to(device) for a in args]).float().cpu().numpy()
        return float_to_uint8(x), ncols

    def card_variant(self) -> str:
        return f"infogan-{self.cfg.loss}"

    def card_arch_params(self) -> dict:
        cfg, p = self.cfg, self.p
        # "q_sn": Q's head has no spectral norm (recorded as on every infogan card so far)
        return {**cfg.arch_params, "spectral_norm": cfg.spectral_norm, "q_hidden": p.q_hidden, "q_sn": False,
                "lambda_cat": p.lambda_cat, "lambda_cont": p.lambda_cont,
                **({"cluster_steps": self.cluster_steps} if self.cluster_steps else {})}  # fmt: skip
