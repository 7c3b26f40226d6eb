"""The GAN losses, one class each, registered by name. All work on raw discriminator logits.

Each class carries the defaults its paper uses (optimizer, learning rates, critic steps), so a
run config only names the loss; the training loop calls the same four hooks for every loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.registry import register_loss


class GANLoss:
    """Interface: d_loss, g_loss, optional gradient penalty, optional post-step hook on D."""

    name = "base"
    n_critic = 1
    optimizer = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}
    default_sn = False

    def __init__(self, gp_lambda: float = 10.0, clip: float = 0.01):
        self.gp_lambda = gp_lambda
        self.clip = clip

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, D, real_x, fake_x, labels) -> torch.Tensor | None:
        return None

    @torch.no_grad()
    def after_d_step(self, D) -> None:
        return None

    def logged(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """Values of a D step worth a curve of their own, from its logits (none by default)."""
        return {}


@register_loss("minimax")
class MinimaxLoss(GANLoss):
    """Goodfellow et al. 2014 as written: G minimises log(1 - D(G(z))) (saturates early on)."""

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake):
        return -F.softplus(fake).mean()  # = mean log(1 - sigmoid(fake))


@register_loss("ns")
class NonSaturatingLoss(MinimaxLoss):
    """Goodfellow et al. 2014's practical variant: G maximises log D(G(z))."""

    def g_loss(self, fake):
        return F.softplus(-fake).mean()


@register_loss("lsgan")
class LSGANLoss(GANLoss):
    """Mao et al. 2017, targets a=0, b=c=1."""

    def d_loss(self, real, fake):
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def g_loss(self, fake):
        return 0.5 * (fake - 1).pow(2).mean()


@register_loss("wgan")
class WGANLoss(GANLoss):
    """Arjovsky et al. 2017: critic weights clipped to [-c, c], RMSprop 5e-5, 5 critic steps."""

    n_critic = 5
    optimizer = {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5}

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake):
        return -fake.mean()

    @torch.no_grad()
    def after_d_step(self, D) -> None:
        for p in D.parameters():
            p.clamp_(-self.clip, self.clip)

    def logged(self, real, fake) -> dict[str, float]:
        """The critic's estimate of the Wasserstein distance, E[D(real)] - E[D(fake)]: the paper's claim is
        that it tracks sample quality, so it is plotted beside the quick evaluations' FID."""
        return {"wasserstein": (real.mean() - fake.mean()).item()}


@register_loss("wgan-gp")
class WGANGPLoss(WGANLoss):
    """Gulrajani et al. 2017: gradient penalty lambda 10, Adam(1e-4, betas 0, 0.9), 5 critic steps."""

    optimizer = {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9)}

    def penalty(self, D, real_x, fake_x, labels):
        eps = torch.rand(
            real_x.shape[0], *([1] * (real_x.dim() - 1)), device=real_x.device, dtype=real_x.dtype
        )
        mix = (eps * real_x + (1 - eps) * fake_x).requires_grad_(True)
        out = D(mix, labels)
        (grad,) = torch.autograd.grad(out.sum(), mix, create_graph=True)
        norms = grad.flatten(1).norm(2, dim=1)  # per sample, over all non-batch dims
        return self.gp_lambda * (norms - 1).pow(2).mean()

    def after_d_step(self, D) -> None:
        return None


@register_loss("hinge")
class HingeLoss(GANLoss):
    """Lim & Ye 2017 / Miyato et al. 2018: hinge D loss, usually with spectral norm on D."""

    default_sn = True
    optimizer = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.0, 0.9)}

    def d_loss(self, real, fake):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake):
        return -fake.mean()
