"""StyleGAN2-style networks (Karras et al. 2019, 2020), small enough for a CPU.

G = mapping z (+ class embedding) -> w (equalised, lr x0.01) and synthesis from a learned constant:
per layer a modulated + demodulated 3x3 convolution, a noise map with learned strength, bias and
leaky ReLU; a ToRGB (modulated 1x1, no demodulation) per resolution whose outputs are summed over
upsampled skips. `w_avg` (per class for a conditional G) is tracked for the truncation trick.
D = residual discriminator (SG2's 'resnet'), minibatch std, and a projection head when conditional.

Resolutions: 28 px images are synthesised natively (7 -> 14 -> 28), 32 and 64 px from 4 x 4.

Modulated convolution, export-friendly: instead of per-sample weights run as a grouped convolution
whose group count is the batch (that freezes the batch in an exported graph), the activations are
scaled by the style, the shared weight runs as one ordinary convolution, and the output is scaled
by the demodulation coefficients 1 / sqrt(sum_{i,k} (w_oik s_i)^2) = rsqrt(s^2 @ sum_k w^2). The
arithmetic is the same as modulating the weights; training and export use this one code path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.nets.karras_layers import (
    LRELU_GAIN,
    DiscriminatorEpilogue,
    EqualConv2d,
    EqualLinear,
    channels,
    downsample2x,
    upsample2x,
)

SIZES = (28, 32, 64)  # the square image sides the networks build


def resolutions(image_shape: tuple[int, int, int]) -> list[int]:
    """Synthesis resolutions, coarse to fine: [7, 14, 28] for 28 px, [4, 8, 16, 32] for 32 px, ... 64."""
    _, h, w = image_shape
    if h != w or h not in SIZES:
        raise ValueError(f"stylegan supports square 28, 32 and 64 px images, got {h}x{w}")
    base = 7 if h == 28 else 4
    return [base * 2**i for i in range(int(math.log2(h // base)) + 1)]


def noise_shapes(image_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per resolution: (noise maps there = synthesis layers there, r, r)."""
    return [(1 if i == 0 else 2, r, r) for i, r in enumerate(resolutions(image_shape))]


def num_ws(image_shape: tuple[int, int, int]) -> int:
    """Style layers (one w each): two per resolution (see Synthesis)."""
    return 2 * len(resolutions(image_shape))


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


class ModulatedConv2d(nn.Module):
    """Conv whose input channels are scaled per sample by a style from w (see module doc).

    out_gain multiplies the output (folded into the demodulation coefficients when demodulating).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        w_dim: int,
        demodulate: bool = True,
        out_gain: float = 1.0,
    ):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.out_gain = out_gain

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [N, Cin]
        weight = self.weight * self.weight_gain
        if not self.demodulate:
            return F.conv2d(x * styles[:, :, None, None], weight * self.out_gain, padding=self.padding)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        demod = torch.rsqrt(styles.square() @ weight.square().sum((2, 3)).t() + 1e-8)  # [N, Cout]
        return x * (demod * self.out_gain)[:, :, None, None]


class SynthesisLayer(nn.Module):
    """(optional 2x upsample) -> modulated 3x3 conv -> + noise * strength -> bias -> leaky ReLU (gain sqrt 2).

    The activation gain is folded into the demodulation coefficients, noise and bias (leaky ReLU is
    positively homogeneous), which saves one pass over the activations.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, out_gain=LRELU_GAIN)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.up = up

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = upsample2x(x, "bilinear")
        shift = noise * (self.noise_strength * LRELU_GAIN) + (self.bias * LRELU_GAIN)[None, :, None, None]
        return F.leaky_relu(self.conv(x, w) + shift, 0.2)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class Mapping(nn.Module):
    """z (+ class embedding, both normalised) -> w through `layers` equalised FC layers at lr x lr_mul."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, num_classes: int, lr_mul: float = 0.01):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(num_classes, w_dim)) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(
            *[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:], strict=True)]
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed[labels])], 1)
        return self.net(x)


class Synthesis(nn.Module):
    """ws [N, num_ws, w_dim] + one noise tensor per resolution [N, layers there, r, r] -> image.

    Style indices as in StyleGAN2: the base resolution's conv takes w 0 and its ToRGB w 1; at each
    finer resolution i the two convs take w 2i-1 and 2i and the ToRGB w 2i+1, so num_ws = 2 x levels.
    """

    def __init__(self, w_dim: int, image_shape: tuple[int, int, int], width: int, max_width: int):
        super().__init__()
        self.res = resolutions(image_shape)
        ch = channels(self.res, width, max_width)
        base = self.res[0]
        self.const = nn.Parameter(torch.randn(ch[base], base, base))
        self.layers = nn.ModuleList([SynthesisLayer(ch[base], ch[base], w_dim, up=False)])
        self.torgb = nn.ModuleList([ToRGB(ch[base], image_shape[0], w_dim)])
        for lo, hi in zip(self.res[:-1], self.res[1:], strict=True):
            self.layers.append(SynthesisLayer(ch[lo], ch[hi], w_dim, up=True))
            self.layers.append(SynthesisLayer(ch[hi], ch[hi], w_dim, up=False))
            self.torgb.append(ToRGB(ch[hi], image_shape[0], w_dim))
        self.num_ws = num_ws(image_shape)

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        if self.training:  # channels-last convolutions train ~1.5x faster on CPU; export keeps NCHW
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.layers[0](x, ws[:, 0], noise[0][:, 0:1])
        img = self.torgb[0](x, ws[:, 1])
        for i in range(1, len(self.res)):
            x = self.layers[2 * i - 1](x, ws[:, 2 * i - 1], noise[i][:, 0:1])
            x = self.layers[2 * i](x, ws[:, 2 * i], noise[i][:, 1:2])
            img = upsample2x(img, "bilinear") + self.torgb[i](x, ws[:, 2 * i + 1])
        return img


class StyleGenerator(nn.Module):
    """Mapping + synthesis + the tracked average w (one row per class when conditional, else one)."""

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        conditional: bool,
        image_shape: tuple[int, int, int],
        w_dim: int = 64,
        mapping_layers: int = 4,
        width: int = 16,
        max_width: int = 64,
        mapping_lr_mul: float = 0.01,
    ):
        super().__init__()
        self.latent_dim, self.conditional, self.image_shape = latent_dim, conditional, tuple(image_shape)
        self.mapping = Mapping(
            latent_dim, w_dim, mapping_layers, num_classes if conditional else 0, mapping_lr_mul
        )
        self.synthesis = Synthesis(w_dim, image_shape, width, max_width)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("w_avg", torch.zeros(num_classes if conditional else 1, w_dim))

    def w_center(self, w: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The truncation centre of each row: its class's average w (conditional) or the global one."""
        return self.w_avg[labels] if self.conditional else self.w_avg.expand(w.shape[0], -1)

    def truncate(self, w: torch.Tensor, psi: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """w_avg + psi (w - w_avg), psi per row: 1 = unchanged, 0 = the average."""
        center = self.w_center(w, labels)
        return center + psi[:, None] * (w - center)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, labels: torch.Tensor | None, beta: float) -> None:
        """Move w_avg (each class present in the batch) towards the batch mean: avg = mean + beta (avg - mean)."""
        w = w.detach().float()
        if not self.conditional:
            self.w_avg.copy_(w.mean(0, keepdim=True).lerp(self.w_avg, beta))
            return
        onehot = F.one_hot(labels, self.w_avg.shape[0]).to(w.dtype)  # [N, K]
        counts = onehot.sum(0)
        present = counts > 0
        means = (onehot.t() @ w)[present] / counts[present, None]
        self.w_avg[present] = means.lerp(self.w_avg[present], beta)

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None,
        noise: list[torch.Tensor],
        z_mix: torch.Tensor | None = None,
        cutoff: int | None = None,
        w_avg_beta: float | None = None,
        return_ws: bool = False,
    ):
        """Training forward: w of z for every layer; layers >= cutoff take z_mix's w (style mixing).

        w_avg_beta: update w_avg with this batch's w of z (Gmain). return_ws: also return ws (path length).
        """
        w = self.mapping(z, labels)
        if w_avg_beta is not None:
            self.update_w_avg(w, labels, w_avg_beta)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if z_mix is not None and cutoff is not None and cutoff < self.num_ws:
            ws[:, cutoff:] = self.mapping(z_mix, labels)[:, None]
        img = self.synthesis(ws, noise)
        return (img, ws) if return_ws else img


class StyleInference(nn.Module):
    """The exported form: (z, [labels], truncation_psi, z_mix, mix_layer, noise per resolution) -> image.

    Truncation moves both w towards w_avg in the graph; style layer k takes z's w when k < mix_layer,
    else z_mix's (mix_layer >= num_ws: no mixing). Noise maps are inputs (the feed builder draws them).
    """

    def __init__(self, g: StyleGenerator):
        super().__init__()
        self.g = g
        self.register_buffer("layer_index", torch.arange(g.num_ws, dtype=torch.float32), persistent=False)

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        g = self.g
        labels = None
        if g.conditional:
            labels, *rest = rest
        psi, z_mix, mix_layer, *noise = rest
        w = g.truncate(g.mapping(z, labels), psi, labels)
        w_mix = g.truncate(g.mapping(z_mix, labels), psi, labels)
        take_z = (self.layer_index[None, :] < mix_layer[:, None])[:, :, None]  # [N, num_ws, 1]
        ws = torch.where(take_z, w[:, None], w_mix[:, None])
        return g.synthesis(ws, list(noise)).clamp(-1.0, 1.0)


class DiscriminatorBlock(nn.Module):
    """Residual block: 3x3 conv, 2x average-pool down, 3x3 conv; plus a pooled 1x1 skip; summed / sqrt(2).

    The second conv runs after the pooling (StyleGAN2 strides it), a quarter of the work at full size.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, act=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, act=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(downsample2x(x))
        x = self.conv1(downsample2x(self.conv0(x)))
        return (x + y) * math.sqrt(0.5)


class StyleDiscriminator(nn.Module):
    """FromRGB -> residual blocks down to the base resolution -> the shared epilogue (minibatch std,
    conv, FC, logit; projection onto a class embedding when conditional).

    aux_classes > 0 adds ACGAN's class head (a linear classifier on the epilogue's FC features):
    forward(x, labels, classes=True) then returns (logit, class logits)."""

    def __init__(
        self,
        num_classes: int,
        conditional: bool,
        image_shape: tuple[int, int, int],
        width: int = 16,
        max_width: int = 64,
        mbstd_group: int = 4,
        aux_classes: int = 0,
    ):
        super().__init__()
        res = resolutions(image_shape)
        ch = channels(res, width, max_width)
        self.fromrgb = EqualConv2d(image_shape[0], ch[res[-1]], 1, act=True)
        pairs = zip(res[-2::-1], res[:0:-1], strict=True)  # (lo, hi), finest first
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch[hi], ch[lo]) for lo, hi in pairs])
        self.epilogue = DiscriminatorEpilogue(ch[res[0]], res[0], num_classes, conditional, mbstd_group)
        self.classes = EqualLinear(ch[res[0]], aux_classes) if aux_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, classes: bool = False):
        if self.training:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.epilogue.features(self.blocks(self.fromrgb(x)))
        logit = self.epilogue.head(features, labels)
        if not classes:
            return logit
        if self.classes is None:
            raise ValueError("this discriminator has no class head (aux_classes=0)")
        return logit, self.classes(features)
