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

Deeper generators (64 px: three up-samplings) put the extra layers first: each is the same four
2x2 phase Convs, interleaved back into a full map with one pixel_shuffle(2) of the stacked phases
(that map is 4x smaller than the last hidden one, so its interleave is cheap), and the last two
layers are the pair above.

Exact arithmetic, same multiply-adds as the ConvTranspose form for the hidden layers (4x for the
small output layer, whose Conv is cheap). Generators of another shape return None and export
unchanged; the exporter's parity check compares the result against the ORIGINAL module either way.
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
    """Same function as a DCGANGenerator in eval mode, as Linear + stride-1 Convs + pixel_shuffles."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.latent_dim, self.num_classes, self.conditional = g.latent_dim, g.num_classes, g.conditional
        self.image_shape, self.embed, self.c0, self.s = g.image_shape, g.embed, g.c0, g.s
        lin, bn0 = g.fc[0], g.fc[1]
        scale, shift = _bn_scale_shift(bn0, lin.out_features)
        bias = _bias(lin, lin.out_features)
        self.fc = nn.Linear(lin.in_features, lin.out_features)
        self.fc.weight.data.copy_(lin.weight.detach() * scale[:, None])
        self.fc.bias.data.copy_(bias * scale + shift)

        ups = list(g.up)
        hidden = [(ups[i], ups[i + 1]) for i in range(0, len(ups) - 2, 3)]  # (ConvTranspose, BatchNorm)
        (up1, bn1), up2 = hidden[-1], ups[-2]
        self.n_early = len(hidden) - 1  # layers interleaved back to a full map (64 px generators)
        for j, (up, bn) in enumerate(hidden[:-1]):
            w, b = _folded_convtranspose(up, bn)
            for k, (wk, _) in enumerate(phase1_weights(w)):
                self.register_buffer(f"w0_{j}_{k}", wk)
            self.register_buffer(f"b0_{j}", b)

        w1, b1 = _folded_convtranspose(up1, bn1)
        bias2 = _bias(up2, up2.out_channels)
        layers1, layers2 = phase1_weights(w1), phase2_weights(up2.weight.detach())
        for k, (w, _) in enumerate(layers1):
            self.register_buffer(f"w1_{k}", w)
        for k, (w, _) in enumerate(layers2):
            self.register_buffer(f"w2_{k}", w)
        self.pads1, self.pads2 = [p for _, p in layers1], [p for _, p in layers2]
        self.register_buffer("b1", b1)
        self.register_buffer("b2", bias2.repeat_interleave(16))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        x = torch.relu(self.fc(z)).view(-1, self.c0, self.s, self.s)
        for j in range(self.n_early):
            w, b = [getattr(self, f"w0_{j}_{k}") for k in range(4)], getattr(self, f"b0_{j}")
            phases = [
                torch.relu(F.conv2d(F.pad(x, pad), wk, b)) for wk, pad in zip(w, self.pads1, strict=True)
            ]
            x = F.pixel_shuffle(torch.stack(phases, 2).flatten(1, 2), 2)  # channel c*4 + py*2 + px
        y = None
        for k, (pad1, pad2) in enumerate(zip(self.pads1, self.pads2, strict=True)):
            phase = torch.relu(F.conv2d(F.pad(x, pad1), getattr(self, f"w1_{k}"), self.b1))
            part = F.conv2d(F.pad(phase, pad2), getattr(self, f"w2_{k}"), self.b2 if k == 0 else None)
            y = part if y is None else y + part
        return torch.tanh(F.pixel_shuffle(y, 4))


def _folded_convtranspose(up: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvTranspose weight and bias with the BatchNorm after it folded in."""
    scale, shift = _bn_scale_shift(bn, up.out_channels)
    return up.weight.detach() * scale[None, :, None, None], _bias(up, up.out_channels) * scale + shift


def phase_rewrite(g: nn.Module) -> nn.Module | None:
    """The stride-1 Conv form of `g` when it is a DCGAN generator of the expected shape, else None.

    A family's inference module that wraps a generator (e.g. InfoGAN's code inputs) offers
    `with_rewritten(rewrite)`: itself around the rewritten generator, or None.
    """
    if hasattr(g, "with_rewritten"):
        return g.with_rewritten(phase_rewrite)
    if type(g).__name__ != "DCGANGenerator" or g.training:
        return None
    if not all(hasattr(g, a) for a in ("fc", "up", "c0", "s", "embed")):
        return None
    fc, up = list(g.fc), list(g.up)
    if [type(m) for m in fc] != [nn.Linear, nn.BatchNorm1d, nn.ReLU] or not _folded_bn(fc[1]):
        return None
    n_hidden = (len(up) - 2) // 3
    hidden_types = [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU] * n_hidden
    if n_hidden < 1 or [type(m) for m in up] != [*hidden_types, nn.ConvTranspose2d, nn.Tanh]:
        return None
    convs, bns = up[0:-2:3] + [up[-2]], up[1:-2:3]
    if not all(_is_upsampler(c) for c in convs) or not all(_folded_bn(b) for b in bns):
        return None
    if fc[0].out_features != g.c0 * g.s * g.s or up[0].in_channels != g.c0:
        return None
    return PhaseConvDCGAN(g).eval()
