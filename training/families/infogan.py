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
them in that order. Options beyond the paper (DEFAULTS, all measured in docs/families-log.md) help the categorical
code take the digit: a clusterer network learning the reals' clusters by IIC before G trains, whose
cluster D projects for each real image while it projects G's code for each fake (`cluster_steps` with
`self_condition`: the mnist-infogan preset), Q itself clustering the reals by IIC (`iic_weight`),
balanced clusters of reals.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_core.card import InputSpec, latent_input
from gan_core.imaging import float_to_uint8
from training.config import TrainConfig
from training.distributed import mean_across_ranks
from training.families._iic import iic_loss, random_affine
from training.families.acgan import aux_loss
from training.families.base import DataInfo, Phase, StepContext
from training.families.common import GRID_SEED, adam
from training.families.gan import AdversarialFamily, make_optimizer, mode_seeking_penalty, share_pairs
from training.families.params import family_params
from training.nets.clusterer import Clusterer
from training.nets.common import maybe_sn
from training.nets.heads import TwoHeadDiscriminator
from training.registry import get_arch, register_family

DEFAULTS = {
    "categorical": 10,  # values of the categorical code
    "categorical_name": "digit",
    "continuous": ["c1", "c2"],  # names of the continuous codes, uniform on [-1, 1]
    "lambda_cat": 1.0,
    "lambda_cont": 0.1,
    "q_hidden": 128,
    # Spectral norm on Q and no BatchNorm: a Lipschitz Q can only tell the codes apart when they change
    # the image a lot, so the categorical code must take a large factor (the digit), not a subtle cue.
    "q_sn": False,
    # The mode-seeking term (diversity_weight) starts at this step: earlier, while the categorical
    # code is still taking hold of the digit, it would hand the digit to z instead.
    "diversity_from": 0,
    # Ratio |x1 - x2| / |z1 - z2| past which the mode-seeking term stops asking z for more change:
    # enough for styles within a digit, so z is not pushed to take the digit from the code (None = no cap).
    "diversity_cap": None,
    # The continuous codes' Gaussian: "fixed" = unit variance, Q predicts the means only (the paper's
    # code: Uniform(1, fix_std=True)), so L_I is half the squared error; "learned" = Q also predicts a
    # log-variance, whose precision (up to e^8 at the clamp) multiplies the term's gradient on G.
    "cont_std": "learned",
    # G's categorical term: "ce" = the cross-entropy of L_I (the paper's); "hinge" = the multi-class
    # hinge (acgan.aux_loss), which stops pulling a fake once Q picks its code by a margin of 1.
    "g_cat_loss": "ce",
    # Self-conditioning (as Liu et al. 2020's self-conditioned GAN, with Q as the clusterer): D projects
    # the categorical code, the one G was given for a fake and Q's argmax for a real image, so D itself
    # asks each code's images to look like the reals Q files under it; no label is used.
    "self_condition": False,
    # Balanced clusters of reals (SwAV's Sinkhorn-Knopp self-labelling, Caron et al. 2020): in the D step Q
    # also learns to file real images under the codes, towards its own guesses rebalanced so every code
    # takes an equal share of the batch (MNIST's digits are balanced); with self_condition, D projects that
    # balanced code for reals. Without it two codes may share a digit while a third holds several.
    "balanced_reals": False,
    "lambda_real": 1.0,  # weight of Q's loss on the reals' balanced codes
    # Invariant Information Clustering of the reals (Ji et al. 2019, training/families/_iic.py): in the D step
    # Q's categorical head (and iic_heads - 1 more heads beside it, plus as many over-clustering heads, on
    # D's trunk, as IIC) learns to file a real image and `iic_views` warped copies of it under the same code
    # while using every code; no label is read. The weight of that term (0 = off). With self_condition, D
    # projects those codes for reals, so each code's fakes are asked to look like the reals filed under it.
    "iic_weight": 0.0,
    "iic_heads": 5,
    "iic_overcluster": 50,  # over-clustering heads' size (0 = none)
    "iic_views": 4,
    # Every K-way IIC head, not only Q's code head, takes the MI term's categorical loss on fakes: each head
    # must file G's code c under c, so G follows the heads' consensus rather than one head's clustering.
    "iic_tie_heads": False,
    # A clusterer of its own (training/nets/clusterer.py): for the first `cluster_steps` steps only it trains,
    # by IIC on the reals and `cluster_views` warped copies (no label is read), with `cluster_heads` K-way
    # heads and as many over-clustering heads; from then on it is frozen, G and D train, and with
    # self_condition D projects its best head's cluster of each real image (0 = no clusterer).
    "cluster_steps": 0,
    "cluster_heads": 15,
    "cluster_overcluster": 50,
    "cluster_views": 4,
    "cluster_lamb": 1.5,  # IIC's marginal-entropy weight (_iic.iic_loss)
    "cluster_lr": 1e-3,  # Adam (0.9, 0.999), the clusterer's own optimiser
    "cluster_width": 32,
}
CONT_STDS = ("learned", "fixed")
G_CAT_LOSSES = ("ce", "hinge")
CONT_RANGE = (-1.0, 1.0)


def info_loss(
    q: torch.Tensor,
    cat: torch.Tensor,
    cont: torch.Tensor,
    lambda_cat: float,
    lambda_cont: float,
    fixed_std: bool = False,
    cat_loss: str = "ce",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weighted L_I, categorical term, continuous Gaussian NLL) of Q's outputs.

    q: [N, K + 2M] = K categorical logits (raw: cross_entropy applies the log-softmax), then M means
    and M log-variances of the continuous codes (ignored with fixed_std: unit variance). Minimising
    L_I maximises the lower bound on I(c; G(z, c)). cat_loss "hinge" swaps the cross-entropy for the
    multi-class hinge (G's side only, see DEFAULTS).
    """
    k, m = q.shape[1] - 2 * cont.shape[1], cont.shape[1]
    ce = aux_loss(q[:, :k], cat, cat_loss)
    if m == 0:
        return lambda_cat * ce, ce, ce.new_zeros(())
    mean, logvar = q[:, k : k + m], q[:, k + m :].clamp(-8.0, 8.0)
    if fixed_std:
        logvar = torch.zeros_like(mean)
    nll = F.gaussian_nll_loss(mean, cont, logvar.exp(), full=True, reduction="none").sum(1).mean()
    return lambda_cat * ce + lambda_cont * nll, ce, nll


@torch.no_grad()
def balanced_codes(logits: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Soft code assignments [N, K] of a batch, rebalanced so each code holds N / K images.

    Sinkhorn-Knopp on Q's softmax (SwAV): alternately scale the codes' columns to equal mass and each
    image's row to sum to 1; `iters` rounds, as SwAV. Rows sum to 1; columns to about N / K.
    """
    q = torch.softmax(logits.float(), 1).T  # [K, N]
    k, n = q.shape
    q = q / q.sum()
    for _ in range(iters):
        q = q / (q.sum(1, keepdim=True) * k)
        q = q / (q.sum(0, keepdim=True) * n)
    return (q * n).T


class QHead(nn.Module):
    """Q(c | x) from the discriminator's trunk features: FC - BatchNorm - LeakyReLU - FC (the paper's),
    or with `sn` spectral-normalised FC - LeakyReLU - FC (Lipschitz, see DEFAULTS)."""

    def __init__(
        self,
        feat_dim: int,
        hidden: int,
        n_cat: int,
        n_cont: int,
        sn: bool = False,
        cluster_heads: int = 0,
        overcluster: int = 0,
    ):
        super().__init__()
        norm = [] if sn else [nn.BatchNorm1d(hidden)]
        self.net = nn.Sequential(
            maybe_sn(nn.Linear(feat_dim, hidden, bias=sn), sn),
            *norm,
            nn.LeakyReLU(0.1),
            maybe_sn(nn.Linear(hidden, n_cat + 2 * n_cont), sn),
        )
        # IIC's extra heads on the trunk features (see DEFAULTS: iic_weight): their logits follow Q's outputs
        self.n_cat, self.width = n_cat, n_cat + 2 * n_cont
        self.clusters = nn.ModuleList(nn.Linear(feat_dim, n_cat) for _ in range(cluster_heads))
        self.over = nn.ModuleList(
            nn.Linear(feat_dim, overcluster) for _ in range(cluster_heads + 1 if overcluster else 0)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[N, K + 2M] (codes), then the IIC heads' logits when there are any."""
        q = self.net(h)
        extra = [m(h) for m in (*self.clusters, *self.over)]
        return torch.cat([q, *extra], 1) if extra else q

    def cluster_logits(self, q: torch.Tensor) -> list[torch.Tensor]:
        """The K-way heads IIC trains (Q's categorical code first), then the over-clustering heads."""
        heads = [q[:, : self.n_cat]]
        at = self.width
        for m in (*self.clusters, *self.over):
            heads.append(q[:, at : at + m.out_features])
            at += m.out_features
        return heads


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


@register_family("infogan")
class InfoGANFamily(AdversarialFamily):
    """G, D with a Q head, trained on the adversarial loss plus lambda * L_I (see module doc); the
    loss, its paper defaults and the phases are the classic family's."""

    augments = False  # its own D / G steps do not apply DiffAugment (yet)

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.p = family_params(cfg, DEFAULTS)
        self.n_cat, self.cont_names = int(self.p["categorical"]), list(self.p["continuous"])
        for key, allowed in (("cont_std", CONT_STDS), ("g_cat_loss", G_CAT_LOSSES)):
            if self.p[key] not in allowed:
                raise ValueError(
                    f"family_params.{key}: must be one of {', '.join(allowed)}, got {self.p[key]!r}"
                )
        self.cluster_steps = int(self.p["cluster_steps"])
        if self.cluster_steps and not self.p["self_condition"]:
            raise ValueError(
                "family_params.cluster_steps: needs self_condition: true (D projects the clusters)"
            )
        if self.cluster_steps and (self.p["iic_weight"] or self.p["balanced_reals"]):
            raise ValueError(
                "family_params.cluster_steps: the clusterer labels the reals; iic_weight and balanced_reals "
                "must be off"
            )
        self.clustering = self.cluster_steps > 0  # set per step by schedule()

    @classmethod
    def resolve(cls, cfg: TrainConfig) -> TrainConfig:
        if cfg.conditional:
            raise ValueError("infogan is unsupervised: conditional must be false (the codes replace labels)")
        return super().resolve(cfg)

    # ---- networks ------------------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        cfg, shape = self.cfg, tuple(self.data.image_shape)
        arch = get_arch(cfg.arch)
        g, _ = arch(
            shape, self.n_cat, True, cfg.latent_dim + len(self.cont_names), sn=False, **cfg.arch_params
        )
        # self_condition: D projects the categorical code (see DEFAULTS); else it is unconditional
        cond = bool(self.p["self_condition"])
        d_classes, d_cond = (self.n_cat, {"cond_mode": "projection"}) if cond else (self.data.num_classes, {})
        _, d = arch(shape, d_classes, cond, cfg.latent_dim, sn=cfg.spectral_norm, **d_cond, **cfg.arch_params)
        p = self.p
        q = partial(
            QHead,
            hidden=int(p["q_hidden"]),
            n_cat=self.n_cat,
            n_cont=len(self.cont_names),
            sn=bool(p["q_sn"]),
            **(
                {"cluster_heads": int(p["iic_heads"]) - 1, "overcluster": int(p["iic_overcluster"])}
                if p["iic_weight"]
                else {}
            ),
        )
        nets = {"g": g, "d": TwoHeadDiscriminator(d, q)}
        if self.cluster_steps:
            nets["c"] = Clusterer(
                shape,
                self.n_cat,
                int(p["cluster_heads"]),
                int(p["cluster_overcluster"]),
                int(p["cluster_width"]),
            )
        return nets

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg, g, d = self.cfg, self.nets["g"], self.nets["d"]
        # Q is trained by both steps: with D's trunk in the D step, with G in the G step.
        opts = {
            "g": make_optimizer(cfg, [*g.parameters(), *d.aux.parameters()], cfg.lr_g),
            "d": make_optimizer(cfg, d.parameters(), cfg.lr_d),
        }
        if self.cluster_steps:
            opts["c"] = adam(
                cfg, self.nets["c"].parameters(), float(self.p["cluster_lr"]), betas=(0.9, 0.999)
            )
        return opts

    # ---- training ------------------------------------------------------------------------------
    def draw_codes(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z [N, latent], categorical [N], continuous [N, M]) from the training noise generator."""
        z = torch.randn(n, self.cfg.latent_dim, generator=gen)
        cat = torch.randint(0, self.n_cat, (n,), generator=gen)
        cont = torch.rand(n, len(self.cont_names), generator=gen) * 2.0 - 1.0
        return z, cat, cont

    def _info(self, q: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor, cat_loss: str = "ce"):
        p = self.p
        aux = self.nets["d"].aux
        codes = q[:, : aux.width]  # Q's code outputs, not the IIC heads
        fixed = p["cont_std"] == "fixed"
        total, ce, nll = info_loss(
            codes.float(), cat, cont, p["lambda_cat"], p["lambda_cont"], fixed, cat_loss
        )
        if p["iic_weight"] and p["iic_tie_heads"]:  # the categorical term averaged over every K-way head
            heads = aux.cluster_logits(q.float())[1 : 1 + len(aux.clusters)]  # the K-way ones
            tied = (ce + sum(aux_loss(h, cat, cat_loss) for h in heads)) / (1 + len(heads))
            total, ce = total + p["lambda_cat"] * (tied - ce), tied
        return total, ce, nll

    def schedule(self, step: int) -> None:
        self.clustering = step < self.cluster_steps

    def phases(self) -> list[Phase]:
        return [Phase("cluster")] if self.clustering else super().phases()

    def eval_caveat(self) -> str | None:
        if self.clustering:
            return f"clustering the reals until step {self.cluster_steps}: G has not trained yet"
        return None

    def run_phase(self, phase: Phase, ctx: StepContext) -> dict[str, float]:
        if phase.name == "cluster":
            return self.cluster_step(ctx)
        return self.d_step(ctx) if phase.name == "d" else self.g_step(ctx)

    def cluster_step(self, ctx: StepContext) -> dict[str, float]:
        """IIC on a real batch and `cluster_views` warped copies of it: every head of the clusterer."""
        clusterer = self.nets["c"]
        real, _ = ctx.next_batch()  # labels unused
        n, views = real.shape[0], int(self.p["cluster_views"])
        warped = random_affine(real.repeat(views, 1, 1, 1), ctx.noise)
        with ctx.autocast():
            heads = ctx.nets["c"](torch.cat([real, warped]))
            terms = torch.stack(
                [iic_loss(h[:n].repeat(views, 1), h[n:], lamb=self.p["cluster_lamb"]) for h in heads]
            )
        self.optimize("c", terms.sum())
        # every DDP rank must read the same head: it is picked by the losses averaged over the ranks
        clusterer.record(torch.tensor(mean_across_ranks(terms[: len(clusterer.heads)].tolist())))
        return {"iic": clusterer.loss_avg[clusterer.best_head()].item()}  # the best head's running loss

    def d_step(self, ctx: StepContext) -> dict[str, float]:
        G, D = ctx.nets["g"], ctx.nets["d"]
        real, _ = ctx.next_batch()  # labels unused: InfoGAN is unsupervised
        n = real.shape[0]
        z, cat, cont = (t.to(ctx.device) for t in self.draw_codes(n, ctx.noise))
        views = int(self.p["iic_views"]) if self.p["iic_weight"] else 0
        warped = [random_affine(real.repeat(views, 1, 1, 1), ctx.noise)] if views else []
        with ctx.autocast():
            with torch.no_grad():
                fake = G(torch.cat([z, cont], 1), cat)
            guess = label_fn = labels = real_labels = None
            if self.cluster_steps:  # reals: the clusterer's cluster; fakes: G's code
                real_labels = self.nets["c"].labels(real)
                labels = torch.cat([real_labels, cat])
            elif self.p["self_condition"]:  # reals: Q's (balanced) guess of their code; fakes: G's code
                guess = self.real_codes
                label_fn = lambda q: torch.cat([guess(q[:n]), cat, guess(q[2 * n :])])  # noqa: E731
            out, q = D(torch.cat([real, fake.to(real.dtype), *warped]), labels, label_fn=label_fn)
            out = out.float()[: 2 * n]  # the warped reals feed IIC only
            adv = self.loss.d_loss(out[:n], out[n:])
            pen = self.loss.penalty(lambda x, y: D(x, y, label_fn=guess)[0], real, fake.float(), real_labels)
            info, ce, nll = self._info(q[n : 2 * n], cat, cont)
            loss = adv + info + (pen if pen is not None else 0.0)
            logs = {}
            if views:  # IIC: a real and its warped copies under one code, every code used (see DEFAULTS)
                heads = self.nets["d"].aux.cluster_logits(q.float())
                terms = [iic_loss(h[:n].repeat(views, 1), h[2 * n :]) for h in heads]
                loss = loss + self.p["iic_weight"] * sum(terms)
                logs["iic"] = terms[0].item()
            if self.p["balanced_reals"]:  # Q files reals under balanced codes (see DEFAULTS)
                logits = q[:n, : self.n_cat].float()
                real_ce = -(balanced_codes(logits) * F.log_softmax(logits, 1)).sum(1).mean()
                loss = loss + self.p["lambda_real"] * real_ce
                logs["info_real"] = real_ce.item()
        self.optimize("d", loss)
        self.loss.after_d_step(self.nets["d"].d)
        return {"d_loss": adv.item(), "info_cat": ce.item(), "info_cont": nll.item(), **logs}

    def real_codes(self, q: torch.Tensor) -> torch.Tensor:
        """The code D projects for real images: Q's argmax, rebalanced first with balanced_reals."""
        logits = q[:, : self.n_cat]
        return (balanced_codes(logits) if self.p["balanced_reals"] else logits).argmax(1)

    def g_step(self, ctx: StepContext) -> dict[str, float]:
        cfg, G, D = self.cfg, ctx.nets["g"], ctx.nets["d"]
        n = cfg.batch_size
        z, cat, cont = self.draw_codes(n, ctx.noise)
        diversity = cfg.diversity_weight if ctx.step >= self.p["diversity_from"] else 0.0
        if diversity:
            share_pairs(cat, cont)  # pairs (i, i + n/2) share their codes and differ in z only
        z, cat, cont = z.to(ctx.device), cat.to(ctx.device), cont.to(ctx.device)
        with ctx.autocast():
            fake = G(torch.cat([z, cont], 1), cat)
            out, q = D(fake, cat if self.p["self_condition"] else None)
            adv = self.loss.g_loss(out.float())
            info, _, _ = self._info(q, cat, cont, self.p["g_cat_loss"])
            loss = adv + info
            if diversity:
                ms = mode_seeking_penalty(fake.float(), z, n // 2, self.p["diversity_cap"])
                loss = loss + diversity * ms
        self.optimize("g", loss)
        return {"g_loss": adv.item(), "g_info": info.item()}

    # ---- inference -----------------------------------------------------------------------------
    def card_inputs(self) -> list[InputSpec]:
        n_cat = self.n_cat
        return [
            latent_input(self.cfg.latent_dim),
            InputSpec(
                name=self.p["categorical_name"], kind="categorical", dtype="int64", num_choices=n_cat,
                description=f"InfoGAN categorical code, 0..{n_cat - 1}, learned without labels; which class "
                "each value draws is measured by `gan evaluate` (card metrics code_classes)",
            ),
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
        return {**cfg.arch_params, "spectral_norm": cfg.spectral_norm, "q_hidden": p["q_hidden"], "q_sn": p["q_sn"],
                "lambda_cat": p["lambda_cat"], "lambda_cont": p["lambda_cont"],
                **({"cluster_steps": self.cluster_steps} if self.cluster_steps else {})}  # fmt: skip
