"""Image grids and PNG encoding with numpy and Pillow only (the torch-free service uses it too)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def grid(images: np.ndarray, ncols: int, pad: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image."""
    if images.ndim != 4:
        raise ValueError(f"grid expects [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    ncols = max(1, min(ncols, n))
    rows = -(-n // ncols)
    out = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = (
            images[i]
        )
    return out


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 [H, W, C] (C = 1 or 3) -> PIL image."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def png_bytes(image: np.ndarray, scale: int = 1, compress_level: int = 1) -> bytes:
    """Encode uint8 [H, W, C]; compress_level 1 is ~5x faster than Pillow's default for small digits."""
    im = to_pil(image)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def float_to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats [N, C, H, W] -> uint8 [N, H, W, C], rounding like the exported graph does."""
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
