"""Progressive GAN networks (Karras et al. 2018), every resolution built up front.

G: z (+ class embedding) -> pixel norm -> 4x4 (dense + 3x3 conv) -> per finer resolution: nearest 2x
upsample, two 3x3 convs; leaky ReLU 0.2 and pixel norm after every conv; a 1x1 ToRGB per resolution
(linear output). D mirrors it: a 1x1 FromRGB per resolution, per block a 3x3 conv, 2x average-pool, 3x3 conv,
then minibatch std, 3x3 conv, dense 4x4 -> features -> logit (projection onto a class embedding
when conditional, as StyleGAN2-ADA). Equalised learning rate everywhere.

Growing: `stage` (0 = 4 px) and `alpha` (fade-in of the newest block) are buffers, set by the
family's schedule, so they travel in checkpoints and into the EMA copy. Only the active blocks run,
so inactive ones get no gradients while the parameter set (and the optimisers) never change.
During a fade, G's output is (1 - alpha) * upsampled ToRGB of the previous resolution + alpha *
ToRGB of the new block, and D blends FromRGB of the pooled image with the new block the same way.

Sizes: resolutions 4 -> 8 -> 16 -> 32 (-> 64). 28 px data is padded to 32 with the background value
(-1) for D (the family pads the reals) and G's 32 px output is cropped back to 28 at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.karras_layers import (
    DiscriminatorEpilogue,
    Downsample2x,
    EqualConv2d,
    EqualLinear,
    channels,
    downsample2x,
    pixel_norm,
    upsample2x,
)


def grown_size(image_shape: tuple[int, int, int]) -> int:
    """The resolution the networks grow to: 32 for 28 and 32 px images, 64 for 64 px."""
    _, h, w = image_shape
    if h != w or h not in (28, 32, 64):
        raise ValueError(f"progan supports square 28, 32 and 64 px images, got {h}x{w}")
    return 32 if h <= 32 else 64


def resolutions(image_shape: tuple[int, int, int]) -> list[int]:
    top = grown_size(image_shape)
    return [4 * 2**i for i in range(top.bit_length() - 2)]


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad images symmetrically to size x size with -1 (black background in [-1, 1])."""
    p = (size - x.shape[-1]) // 2
    return F.pad(x, (p, p, p, p), value=-1.0) if p else x


def crop_to(x: torch.Tensor, size: int) -> torch.Tensor:
    p = (x.shape[-1] - size) // 2
    return x[:, :, p : p + size, p : p + size] if p else x


class _Grown(nn.Module):
    """Stage / alpha buffers shared by G and D."""

    def _init_growth(self) -> None:
        self.register_buffer("stage", torch.zeros([], dtype=torch.int64))
        self.register_buffer("alpha", torch.ones([]))

    def set_growth(self, stage: int, alpha: float) -> None:
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    def growth(self) -> tuple[int, float]:
        return int(self.stage), float(self.alpha)


class ProGenerator(_Grown):
    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        conditional: bool,
        image_shape: tuple[int, int, int],
        width: int = 16,
        max_width: int = 128,
    ):
        super().__init__()
        self.res = resolutions(image_shape)
        self.image_shape = tuple(image_shape)
        ch = channels(self.res, width, max_width)
        c0 = ch[4]
        self.embed = nn.Parameter(torch.randn(num_classes, latent_dim)) if conditional else None
        self.fc = EqualLinear(latent_dim * (2 if conditional else 1), c0 * 16, act=True)
        self.conv0 = EqualConv2d(c0, c0, 3, act=True)
        self.c0 = c0
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [EqualConv2d(ch[lo], ch[hi], 3, act=True), EqualConv2d(ch[hi], ch[hi], 3, act=True)]
            )
            for lo, hi in zip(self.res[:-1], self.res[1:], strict=True)
        )
        self.torgb = nn.ModuleList(EqualConv2d(ch[r], image_shape[0], 1) for r in self.res)
        self._init_growth()

    def features(self, z: torch.Tensor, labels: torch.Tensor | None, stage: int) -> list[torch.Tensor]:
        """Feature maps at resolutions 0..stage (pixel-normalised after every conv)."""
        x = torch.cat([z, self.embed[labels]], 1) if self.embed is not None else z
        h = pixel_norm(self.fc(pixel_norm(x)).view(-1, self.c0, 4, 4))
        if self.training:  # channels-last convolutions train ~1.5x faster on CPU; export keeps NCHW
            h = h.contiguous(memory_format=torch.channels_last)
        feats = [pixel_norm(self.conv0(h))]
        for conv_a, conv_b in self.blocks[:stage]:
            h = pixel_norm(conv_a(upsample2x(feats[-1])))
            feats.append(pixel_norm(conv_b(h)))
        return feats

    def synthesize(
        self, z: torch.Tensor, labels: torch.Tensor | None, stage: int, alpha: float
    ) -> torch.Tensor:
        """Images at resolution res[stage], the newest block faded in by alpha."""
        feats = self.features(z, labels, stage)
        img = self.torgb[stage](feats[-1])
        if stage > 0 and alpha < 1.0:
            img = torch.lerp(upsample2x(self.torgb[stage - 1](feats[-2])), img, alpha)
        return img

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training forward at the current stage and alpha (images at that stage's resolution)."""
        return self.synthesize(z, labels, *self.growth())


class ProInference(nn.Module):
    """The exported form: G at its checkpoint's stage and alpha, upsampled (nearest) to the grown size,
    cropped to the data's size, clamped to [-1, 1]. A finished run exports its final resolution."""

    def __init__(self, g: ProGenerator):
        super().__init__()
        self.g = g
        self.stage, self.alpha = g.growth()
        self.scale = g.res[-1] // g.res[self.stage]

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        img = self.g.synthesize(z, labels, self.stage, self.alpha)
        if self.scale > 1:
            img = F.interpolate(img, scale_factor=float(self.scale), mode="nearest")
        return crop_to(img, self.g.image_shape[-1]).clamp(-1.0, 1.0)


class ProDiscriminator(_Grown):
    def __init__(
        self,
        num_classes: int,
        conditional: bool,
        image_shape: tuple[int, int, int],
        width: int = 16,
        max_width: int = 128,
        mbstd_group: int = 4,
    ):
        super().__init__()
        self.res = resolutions(image_shape)
        ch = channels(self.res, width, max_width)
        self.fromrgb = nn.ModuleList(EqualConv2d(image_shape[0], ch[r], 1, act=True) for r in self.res)
        # blocks[i - 1] takes resolution res[i] down to res[i - 1]: 3x3 conv, 2x average pool, 3x3 conv
        # (the paper pools after both convs; the second one at the lower resolution is 4x cheaper)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                EqualConv2d(ch[hi], ch[hi], 3, act=True),
                Downsample2x(),
                EqualConv2d(ch[hi], ch[lo], 3, act=True),
            )
            for lo, hi in zip(self.res[:-1], self.res[1:], strict=True)
        )
        self.epilogue = DiscriminatorEpilogue(ch[4], 4, num_classes, conditional, mbstd_group)
        self._init_growth()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [N] of images at the current stage's resolution."""
        stage, alpha = self.growth()
        if self.training:
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.fromrgb[stage](x)
        if stage > 0:
            h = self.blocks[stage - 1](h)
            if alpha < 1.0:
                h = torch.lerp(self.fromrgb[stage - 1](downsample2x(x)), h, alpha)
        for i in range(stage - 1, 0, -1):
            h = self.blocks[i - 1](h)
        return self.epilogue(h, labels)
