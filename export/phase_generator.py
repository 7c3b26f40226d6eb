"""Export-time rewrite of a DCGAN generator into stride-1 convolutions (same function, ~2x faster in ORT).

ONNX Runtime's CPU ConvTranspose runs one small GEMM per image plus a col2im scatter and reached
~55 % of the machine's matmul peak on the default generator; its Conv, by contrast, runs MLAS's
blocked NCHWc kernels at or above that peak. Every ConvTranspose(kernel 4, stride 2, padding 1)
is a sum of 2x2 taps per output phase, so:

- layer 1 (x -> h): h is kept as its four stride-2 phases P[py, px] = h[:, :, 2i+py, 2j+px], each a
  2x2 Conv of x with its own zero padding (BatchNorm folded into the weights, ReLU fused);
- layer 2 (h -> image): image row 4i+R (R = 0..3) reads h rows 2i-1..2i+2, i.e. phase rows i-1..i+1,
  so the 4x4 output phases are a sum of one 2x2 Conv per input phase (16*Cout channels each), and
  one pixel_shuffle(4) on the small output lays the pixels out. No interleave of the wide hidden
  tensor is ever materialised: ORT's DepthToSpace on it cost as much as the convolutions.

Exact arithmetic, same multiply-adds as the ConvTranspose form for layer 1 (4x for the small output
layer, whose Conv is cheap). Generators of another shape return None and export unchanged; the
exporter's parity check compares the result against the ORIGINAL module either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL, STRIDE, PADDING = 4, 2, 1  # the DCGAN upsampling layer this rewrite knows


def _bn_scale_shift(bn: nn.Module | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if bn is None:
        return torch.ones(n), torch.zeros(n)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def _bias(layer: nn.Module, n: int) -> torch.Tensor:
    return layer.bias.detach() if layer.bias is not None else torch.zeros(n)


def _is_upsampler(m: nn.Module) -> bool:
    return (
        type(m) is nn.ConvTranspose2d
        and m.kernel_size == (KERNEL, KERNEL) and m.stride == (STRIDE, STRIDE) and m.padding == (PADDING, PADDING)
        and m.groups == 1 and m.dilation == (1, 1) and m.output_padding == (0, 0) and m.padding_mode == "zeros"
    )  # fmt: skip


def _folded_bn(m: nn.Module) -> bool:
    return type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) and m.track_running_stats and m.affine


def phase1_weights(w: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, int, int, int]]]:
    """ConvTranspose weight [Cin, Cout, 4, 4] -> per phase (py, px): Conv weight [Cout, Cin, 2, 2] and F.pad.

    Phase r of an axis: output row 2i+r = sum over taps t of x[i-1+r+t] * w[3-r-2t], i.e. a 2x2 Conv
    after padding (1-r) before and r after.
    """
    out = []
    for py in (0, 1):
        for px in (0, 1):
            ky, kx = [3 - py, 1 - py], [3 - px, 1 - px]
            conv = w[:, :, ky][:, :, :, kx].permute(1, 0, 2, 3).contiguous()
            out.append((conv, (1 - px, px, 1 - py, py)))
    return out


def phase2_weights(w: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, int, int, int]]]:
    """ConvTranspose weight [C, Cout, 4, 4] applied to h given as phases P[p] -> per input phase (py, px):
    Conv weight [Cout*16, C, 2, 2] (output channel co*16 + Ry*4 + Rx = pixel (4i+Ry, 4j+Rx)) and F.pad.

    Tap t of phase p (padded p before, 1-p after) reads P_p[i-p+t] = h[2i+2t-p]; ConvTranspose puts
    h row r at output rows 2r-1+k, so output row 4i+R takes kernel row k = R+1+2p-4t when 0 <= k < 4.
    """
    c, cout = w.shape[:2]
    out = []
    for py in (0, 1):
        for px in (0, 1):
            conv = torch.zeros(cout, 4, 4, c, 2, 2)
            for ry in range(4):
                for rx in range(4):
                    for ty in (0, 1):
                        for tx in (0, 1):
                            ky, kx = ry + 1 + 2 * py - 4 * ty, rx + 1 + 2 * px - 4 * tx
                            if 0 <= ky < KERNEL and 0 <= kx < KERNEL:
                                conv[:, ry, rx, :, ty, tx] = w[:, :, ky, kx].T
            out.append((conv.reshape(cout * 16, c, 2, 2), (px, 1 - px, py, 1 - py)))
    return out


class PhaseConvDCGAN(nn.Module):
    """Same function as a DCGANGenerator in eval mode, as Linear + stride-1 Convs + one pixel_shuffle."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.latent_dim, self.num_classes, self.conditional = g.latent_dim, g.num_classes, g.conditional
        self.image_shape, self.embed, self.c4, self.s = g.image_shape, g.embed, g.c4, g.s
        lin, bn0 = g.fc[0], g.fc[1]
        scale, shift = _bn_scale_shift(bn0, lin.out_features)
        bias = _bias(lin, lin.out_features)
        self.fc = nn.Linear(lin.in_features, lin.out_features)
        self.fc.weight.data.copy_(lin.weight.detach() * scale[:, None])
        self.fc.bias.data.copy_(bias * scale + shift)

        up1, bn1, up2 = g.up[0], g.up[1], g.up[3]
        scale, shift = _bn_scale_shift(bn1, up1.out_channels)
        bias1 = _bias(up1, up1.out_channels)
        w1 = up1.weight.detach() * scale[None, :, None, None]
        bias2 = _bias(up2, up2.out_channels)
        layers1, layers2 = phase1_weights(w1), phase2_weights(up2.weight.detach())
        for k, (w, _) in enumerate(layers1):
            self.register_buffer(f"w1_{k}", w)
        for k, (w, _) in enumerate(layers2):
            self.register_buffer(f"w2_{k}", w)
        self.pads1, self.pads2 = [p for _, p in layers1], [p for _, p in layers2]
        self.register_buffer("b1", bias1 * scale + shift)
        self.register_buffer("b2", bias2.repeat_interleave(16))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        x = torch.relu(self.fc(z)).view(-1, self.c4, self.s, self.s)
        y = None
        for k, (pad1, pad2) in enumerate(zip(self.pads1, self.pads2, strict=True)):
            phase = torch.relu(F.conv2d(F.pad(x, pad1), getattr(self, f"w1_{k}"), self.b1))
            part = F.conv2d(F.pad(phase, pad2), getattr(self, f"w2_{k}"), self.b2 if k == 0 else None)
            y = part if y is None else y + part
        return torch.tanh(F.pixel_shuffle(y, 4))


def phase_rewrite(g: nn.Module) -> nn.Module | None:
    """The stride-1 Conv form of `g` when it is a DCGAN generator of the expected shape, else None.

    A family's inference module that wraps a generator (e.g. InfoGAN's code inputs) offers
    `with_rewritten(rewrite)`: itself around the rewritten generator, or None.
    """
    if hasattr(g, "with_rewritten"):
        return g.with_rewritten(phase_rewrite)
    if type(g).__name__ != "DCGANGenerator" or g.training:
        return None
    if not all(hasattr(g, a) for a in ("fc", "up", "c4", "s", "embed")):
        return None
    fc, up = list(g.fc), list(g.up)
    if [type(m) for m in fc] != [nn.Linear, nn.BatchNorm1d, nn.ReLU] or not _folded_bn(fc[1]):
        return None
    if [type(m) for m in up] != [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.ConvTranspose2d, nn.Tanh]:
        return None
    if not (_is_upsampler(up[0]) and _is_upsampler(up[3]) and _folded_bn(up[1])):
        return None
    if fc[0].out_features != g.c4 * g.s * g.s or up[0].in_channels != g.c4:
        return None
    return PhaseConvDCGAN(g).eval()
