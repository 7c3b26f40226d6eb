"""The paired image-to-image networks: pix2pix's U-Net, SRGAN / ESRGAN's residual upscaler, and the
conditional PatchGAN both train against.

U-Net (Isola et al. 2017, pytorch-CycleGAN-and-pix2pix `UnetGenerator`): `depth` stride-2 4x4 conv
downsamplings (LeakyReLU 0.2, instance norm but on the outermost), a bottleneck, and transposed-conv
upsamplings (ReLU, instance norm) each concatenated with the encoder's map of its size, tanh out. The
paper's 256 px net has 8 levels; here `depth` is what the image allows (28 px: 28 -> 14 -> 7), and the
bottleneck gets `blocks` residual 3x3 blocks instead of the missing levels, so a 7x7 map still sees the
whole digit (a centre 14x14 hole needs context from its far side). No dropout: the paper's dropout is
its only noise and it keeps it at test time; an exported restorer is deterministic.

SR-ResNet (Ledig et al. 2017, PyTorch-GAN `srgan`; ESRGAN's change: no batch norm): 9x9 conv + PReLU,
`blocks` residual blocks (conv-PReLU-conv), a conv and the long skip, log2(scale) x (conv to 4x
channels, pixel shuffle, PReLU), a 9x9 conv to the image. Unlike SRGAN it predicts the residual over
the nearest-upsampled input, with no tanh (as EDSR / ESRGAN end in a plain conv): on digits the L1
loss's first steps push every pixel to the background's -1, where a tanh saturates and the net stops
learning (seen at 150 steps: L1 stuck at 0.28, above nearest upsampling's 0.19; with the residual,
0.15). The pixels are clipped to [-1, 1] where they become uint8 (the export's head).

Both are fully convolutional: any H, W that is a multiple of `multiple` runs (the export keeps them
dynamic). The discriminator is training.nets.cyclegan's PatchGAN on (condition, image) stacked on
the channel axis (pix2pix's conditional D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def unet_depth(h: int, w: int, most: int = 4) -> int:
    """Downsamplings the U-Net makes on H x W: as many (up to `most`) as keep the map whole and >= 4 px."""
    depth = 0
    while (
        depth < most
        and h % 2 ** (depth + 1) == 0
        and w % 2 ** (depth + 1) == 0
        and min(h, w) // 2 ** (depth + 1) >= 4
    ):
        depth += 1
    return depth


class _Residual(nn.Module):
    def __init__(self, ch: int, norm: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(ch, ch, 3, 1, 1)]
        layers += [nn.InstanceNorm2d(ch)] if norm else []
        layers += [nn.ReLU(True) if norm else nn.PReLU(ch), nn.Conv2d(ch, ch, 3, 1, 1)]
        layers += [nn.InstanceNorm2d(ch)] if norm else []
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNetGenerator(nn.Module):
    """[-1, 1] images with `in_ch` channels (image + mask for filling in) -> [-1, 1] images with `out_ch`."""

    def __init__(
        self, in_ch: int, out_ch: int, depth: int, width: int = 64, blocks: int = 2, max_width: int = 512
    ):
        super().__init__()
        self.multiple = 2**depth
        widths = [min(width * 2**i, max_width) for i in range(depth)]
        self.down = nn.ModuleList()
        ch = in_ch
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(ch, w, 4, 2, 1)]
            if i > 0:
                layers.append(nn.InstanceNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, True))
            self.down.append(nn.Sequential(*layers))
            ch = w
        self.middle = nn.Sequential(*[_Residual(ch, norm=True) for _ in range(blocks)])
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            skip = widths[i - 1] if i > 0 else 0
            outer = i == 0
            up_in = ch if i == depth - 1 else 2 * ch
            out = out_ch if outer else skip
            layers = [nn.ReLU(True), nn.ConvTranspose2d(up_in, out, 4, 2, 1)]
            layers += [nn.Tanh()] if outer else [nn.InstanceNorm2d(out)]
            self.up.append(nn.Sequential(*layers))
            ch = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        x = self.middle(x)
        for i, u in enumerate(self.up):
            if i > 0:
                x = torch.cat([x, skips[-1 - i]], 1)
            x = u(x)
        return x


class SRResNet(nn.Module):
    """[-1, 1] images (C, H, W) -> [-1, 1] images (C, scale H, scale W)."""

    def __init__(self, channels: int, scale: int, width: int = 64, blocks: int = 16):
        super().__init__()
        self.multiple = 1
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(
            *[_Residual(width, norm=False) for _ in range(blocks)], nn.Conv2d(width, width, 3, 1, 1)
        )
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 9, 1, 4)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return base + self.tail(self.up(h + self.body(h)))
