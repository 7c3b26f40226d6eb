"""Declared, seeded damage: how a paired image-to-image run makes its (damaged, clean) pairs on the fly.

A spec is parts joined by '+', applied left to right to clean [-1, 1] images [N, C, H, W]:

    down:N       area downsampling by N (2, 4 or 8): super-resolution pairs (the only part that resizes)
    mask:box     a centre box of half the side is lost (filled with 0, mid-grey), the mask marks it
    mask:random  a box of 1/4 .. 1/2 the side at a random place per image
    noise:SIGMA  additive Gaussian noise, SIGMA in [0, 1] pixel units (0.2 = a fifth of the range)
    blur:SIGMA   Gaussian blur, SIGMA in pixels (kernel 2 ceil(3 SIGMA) + 1, reflected borders)
    jpeg:Q       JPEG round trip at quality Q (1..95, Pillow)
    old          "old photo" damage: blur:0.8+noise:0.1+jpeg:40

At most one down and one mask part, not both (a filled-in hole is at the output's size). Every random
draw comes from the caller's torch.Generator (the run's checkpointed noise stream, or a fixed seed in
evaluation), so pairs repeat exactly. An unknown or malformed part is one UserError line naming it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gan_core.errors import UserError

FIELD = "family_params.corruption"
KNOWN = "down:2|4|8, mask:box, mask:random, noise:SIGMA, blur:SIGMA, jpeg:Q, old"
ALIASES = {"old": "blur:0.8+noise:0.1+jpeg:40"}
SCALES = (2, 4, 8)
BOX = 0.5  # mask:box loses the centre box of this fraction of each side (14x14 of 28x28)


@dataclass(frozen=True)
class Part:
    kind: str  # down | mask | noise | blur | jpeg
    value: float | str

    def __str__(self) -> str:
        v = self.value
        return f"{self.kind}:{int(v) if isinstance(v, float) and v.is_integer() else v}"


def _number(text: str, part: str, spec: str, low: float, high: float, whole: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (low <= v <= high) or (whole and not v.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise UserError(f"{FIELD}: {part!r} in {spec!r} needs {kind} in [{low:g}, {high:g}]")
    return v


def _part(text: str, spec: str) -> Part:
    kind, _, arg = text.partition(":")
    if kind == "down":
        if arg not in {str(s) for s in SCALES}:
            raise UserError(f"{FIELD}: {text!r} in {spec!r}: the scale must be one of 2, 4, 8")
        return Part("down", float(arg))
    if kind == "mask":
        if arg not in ("box", "random"):
            raise UserError(f"{FIELD}: {text!r} in {spec!r}: mask:box or mask:random")
        return Part("mask", arg)
    if kind == "noise":
        return Part("noise", _number(arg, text, spec, 0, 1))
    if kind == "blur":
        return Part("blur", _number(arg, text, spec, 0.1, 8))
    if kind == "jpeg":
        return Part("jpeg", _number(arg, text, spec, 1, 95, whole=True))
    raise UserError(f"{FIELD}: unknown corruption {text!r} in {spec!r}; known: {KNOWN}")


@dataclass(frozen=True)
class Corruption:
    """A parsed spec (see the module doc); `str()` is its canonical form, what the card records."""

    parts: tuple[Part, ...]

    def __str__(self) -> str:
        return "+".join(map(str, self.parts))

    @property
    def scale(self) -> int:
        """The output / input size ratio (1 unless a down part)."""
        return next((int(p.value) for p in self.parts if p.kind == "down"), 1)

    @property
    def mask(self) -> str | None:
        """'box', 'random' or None: whether the model takes a mask (filling in)."""
        return next((str(p.value) for p in self.parts if p.kind == "mask"), None)

    @property
    def only_mask(self) -> bool:
        """Filling in alone: the known pixels are clean, so the output keeps them as they are."""
        return self.mask is not None and len(self.parts) == 1

    @property
    def task(self) -> str:
        return "upscale" if self.scale > 1 else "restore"

    def apply(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(damaged images, mask [N, 1, H, W] of 1 = lost pixels or None) of clean [-1, 1] images x."""
        mask = None
        for p in self.parts:
            if p.kind == "down":
                x = F.avg_pool2d(x, int(p.value))
            elif p.kind == "mask":
                mask = (centre_box if p.value == "box" else random_boxes)(x.shape, gen).to(x.device, x.dtype)
                x = x * (1 - mask)
            elif p.kind == "noise":
                noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
                x = (x + 2 * float(p.value) * noise).clamp(-1, 1)
            elif p.kind == "blur":
                x = gaussian_blur(x, float(p.value))
            else:
                x = jpeg(x, int(p.value))
        return x, mask


def parse(spec: str) -> Corruption:
    """The Corruption of a spec string; refusals are one UserError line naming the part."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"{FIELD}: give a corruption spec, e.g. 'down:4', 'mask:box' or 'noise:0.2+blur:1'")
    texts = [t.strip() for t in spec.split("+")]
    parts = tuple(_part(s, spec) for t in texts for s in ALIASES.get(t, t).split("+"))
    kinds = [p.kind for p in parts]
    for kind in ("down", "mask"):
        if kinds.count(kind) > 1:
            raise UserError(f"{FIELD}: {spec!r} has {kinds.count(kind)} {kind} parts; at most one")
    if "down" in kinds and "mask" in kinds:
        raise UserError(f"{FIELD}: {spec!r} combines down and mask; a model either upscales or fills in")
    return Corruption(parts)


def centre_box(shape: torch.Size, gen: torch.Generator | None = None, fraction: float = BOX) -> torch.Tensor:
    """[N, 1, H, W] mask of the centre box (fraction of each side) for every image."""
    n, _, h, w = shape
    bh, bw = round(h * fraction), round(w * fraction)
    m = torch.zeros(n, 1, h, w)
    m[:, :, (h - bh) // 2 : (h - bh) // 2 + bh, (w - bw) // 2 : (w - bw) // 2 + bw] = 1
    return m


def random_boxes(shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    """[N, 1, H, W] mask of one box per image, sides 1/4 .. 1/2 of the image's, anywhere inside it."""
    n, _, h, w = shape
    u = torch.rand(n, 4, generator=gen)
    bh = (h / 4 + u[:, 0] * h / 4).round().long()
    bw = (w / 4 + u[:, 1] * w / 4).round().long()
    top = (u[:, 2] * (h - bh + 1)).long().clamp(max=h - bh)
    left = (u[:, 3] * (w - bw + 1)).long().clamp(max=w - bw)
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    inside_r = (rows >= top[:, None]) & (rows < (top + bh)[:, None])
    inside_c = (cols >= left[:, None]) & (cols < (left + bw)[:, None])
    return (inside_r[:, :, None] & inside_c[:, None, :]).float()[:, None]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel, reflected borders."""
    r = min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1)  # reflection pads less than a side
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG round trip of every image at `quality` (deterministic; Pillow's encoder)."""
    from PIL import Image

    u8 = torch.clamp(torch.round((x.detach().float().cpu() + 1) * 127.5), 0, 255).to(torch.uint8)
    out = []
    for img in u8.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        back = np.asarray(Image.open(buf).convert(pil.mode))
        out.append(back.reshape(img.shape))
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype)
    return y / 127.5 - 1
