"""CycleGAN's networks (Zhu et al. 2017, after Johnson et al. 2016): a ResNet generator and a PatchGAN.

Generator: c7s1-w, two stride-2 downsamplings (d2w, d4w), `blocks` residual blocks at 4w, two
transposed-conv upsamplings, c7s1-C, tanh; reflection padding and instance normalisation, as in the
paper's code. 28x28 is handled natively (28 -> 14 -> 7 -> 14 -> 28); any size divisible by 4 works.
When the two domains differ in size, the generator first resizes its input bilinearly to the target
size; when they differ in channels, the first and last convolutions map between them.

PatchGAN: conv(4, stride 2) with LeakyReLU 0.2, `layers - 1` more stride-2 convs with instance norm,
one stride-1 conv, then a 1-channel map of per-patch real/fake scores. The paper's 70x70 patches on
256 px are `layers=3`; on 28 px images `layers=2` scores 34x34 patches (a 5x5 map), `layers=1` 16x16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.errors import UserError
from training.nets.common import maybe_sn


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """[-1, 1] images of shape `src` (C, H, W) -> [-1, 1] images of shape `dst`."""

    def __init__(
        self, src: tuple[int, int, int], dst: tuple[int, int, int], width: int = 64, blocks: int = 9
    ):
        super().__init__()
        h, w = dst[1:]
        if h % 4 or w % 4:
            raise UserError(f"image_shape: the ResNet generator needs H and W divisible by 4, got {h}x{w}")
        self.size = None if tuple(src[1:]) == (h, w) else (h, w)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(src[0], width, 7), nn.InstanceNorm2d(width), nn.ReLU(True),
        ]  # fmt: skip
        ch = width
        for _ in range(2):
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2), nn.ReLU(True),
            ]  # fmt: skip
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, dst[0], 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """[-1, 1] images (C, H, W) -> a map of per-patch scores (raw, for the least-squares loss)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 64, layers: int = 3, sn: bool = False):
        super().__init__()
        # sn: spectral norm on every conv and no instance norm, as SN-PatchGAN (Yu et al. 2019) and
        # SN-GAN's D: the Lipschitz bound, not a per-image normalisation, keeps D from running away.
        seq: list[nn.Module] = [maybe_sn(nn.Conv2d(shape[0], width, 4, 2, 1), sn), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            norm = [] if sn else [nn.InstanceNorm2d(out)]
            seq += [maybe_sn(nn.Conv2d(ch, out, 4, stride, 1), sn), *norm, nn.LeakyReLU(0.2, True)]
            ch = out
        seq.append(maybe_sn(nn.Conv2d(ch, 1, 4, 1, 1), sn))
        self.net = nn.Sequential(*seq)
        size = shape[1]
        for _ in range(layers):
            size //= 2
        if size - 2 < 1:
            raise UserError(
                f"arch_params.d_layers: {layers} stride-2 layers leave no patch of a {shape[1]} px image"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
