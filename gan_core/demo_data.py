"""A procedural colour dataset: ten kinds of coloured shapes on textured backgrounds (`gan make-demo-data`).

No colour dataset ships with the project, so tests, the README's colour run and new users share
this one. Image i of a split is a pure function of (seed, split, i): its class is i % 10, and its
shape (position, size, rotation, colour, shading) and background (gradient, stripes, checker or
smooth noise in two muted colours) come from a generator seeded [seed, split, i], so a bigger
set starts with the images of a smaller one. Shapes are drawn at twice the size and box-filtered
down (anti-aliased edges), then get Gaussian pixel noise (std 4 levels by default; 0 gives the clean
scenes, the same draws otherwise). numpy only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gan_core.fileio import atomic_write_bytes, write_file_fast
from gan_core.idx import DataError
from gan_core.imaging import png_bytes

CLASSES = ["circle", "square", "triangle", "diamond", "plus", "ring", "star", "hexagon", "crescent", "cross"]
SIZES = (28, 32, 64)
SPLITS = {"train": 0, "test": 1}
VERSION = 1
SUPERSAMPLE = 2
PIXEL_NOISE = 4.0  # std of the Gaussian pixel noise, in 0..255 levels
BACKGROUNDS = ("gradient", "stripes", "checker", "noise")  # the default set; "flat" (one colour) on request
BACKGROUND_KINDS = (*BACKGROUNDS, "flat")


def _polygon(x: np.ndarray, y: np.ndarray, n: int, phase: float, inradius: float) -> np.ndarray:
    """Inside a regular n-gon whose edge normals point at phase + 2 pi k / n."""
    t = phase + 2 * np.pi * np.arange(n) / n
    return (x[..., None] * np.cos(t) + y[..., None] * np.sin(t)).max(-1) < inradius


def _bar_cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((np.abs(x) < 0.3) & (np.abs(y) < 0.92)) | ((np.abs(y) < 0.3) & (np.abs(x) < 0.92))


def shape_mask(cls: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of class `cls` in shape coordinates (unit radius, y pointing down)."""
    r = np.hypot(x, y)
    name = CLASSES[cls]
    if name == "circle":
        return r < 0.9
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) < 0.75
    if name == "triangle":  # apex up (towards -y)
        return _polygon(x, y + 0.15, 3, np.pi / 2, 0.5)
    if name == "diamond":
        return np.abs(x) + np.abs(y) < 0.95
    if name == "plus":
        return _bar_cross(x, y)
    if name == "ring":
        return (r < 0.92) & (r > 0.55)
    if name == "star":
        a = np.arctan2(y, x) + np.pi / 2
        tip = np.abs(((a * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at the five tips, 0 between them
        return r < 0.4 + 0.58 * tip**1.6
    if name == "hexagon":
        return _polygon(x, y, 6, 0.0, 0.8)
    if name == "crescent":
        return (r < 0.92) & (np.hypot(x - 0.42, y + 0.12) > 0.72)
    if name == "cross":
        c = np.sqrt(0.5)
        return _bar_cross(c * (x + y), c * (y - x))
    raise ValueError(f"class index {cls} out of range 0..{len(CLASSES) - 1}")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) as RGB floats."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cells: int) -> np.ndarray:
    """Bilinear interpolation of a random (cells+1)^2 grid over [-1, 1]^2: values in [0, 1]."""
    g = rng.random((cells + 1, cells + 1))
    fx, fy = (u + 1) / 2 * cells, (v + 1) / 2 * cells
    ix, iy = np.clip(fx.astype(int), 0, cells - 1), np.clip(fy.astype(int), 0, cells - 1)
    tx, ty = fx - ix, fy - iy
    top = g[iy, ix] * (1 - tx) + g[iy, ix + 1] * tx
    bottom = g[iy + 1, ix] * (1 - tx) + g[iy + 1, ix + 1] * tx
    return top * (1 - ty) + bottom * ty


def _background(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, kinds: tuple[str, ...] = BACKGROUNDS
) -> np.ndarray:
    """[H, W, 3] floats in [0, 1]: one of `kinds` (textures, or flat) in two muted, darker colours."""
    hue = rng.random()
    c1 = _hsv(hue, rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.45))
    c2 = _hsv((hue + rng.uniform(0.15, 0.5)) % 1.0, rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.6))
    kind = kinds[rng.integers(len(kinds))]
    angle = rng.uniform(0, np.pi)
    along = u * np.cos(angle) + v * np.sin(angle)
    if kind == "gradient":
        t = (along + 1.5) / 3.0
    elif kind == "stripes":
        t = 0.5 + 0.5 * np.sin(rng.uniform(6, 14) * along + rng.uniform(0, 2 * np.pi))
    elif kind == "checker":  # slightly rotated
        k = rng.integers(3, 7)
        across = -u * np.sin(angle) + v * np.cos(angle)
        t = ((np.floor((along + 2) * k / 2) + np.floor((across + 2) * k / 2)) % 2) * 0.8 + 0.1
    elif kind == "noise":  # smooth noise
        t = _smooth_noise(rng, u, v, int(rng.integers(3, 7)))
    else:  # flat: the first colour alone
        t = np.zeros_like(u)
    t = np.clip(t, 0, 1)[..., None]
    return c1 * (1 - t) + c2 * t


def render(
    cls: int,
    size: int,
    rng: np.random.Generator,
    pixel_noise: float = PIXEL_NOISE,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
) -> np.ndarray:
    """One image of class `cls`: uint8 [size, size, 3]; the noise is drawn last, so its std changes nothing else."""
    n = size * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    v, u = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    radius = rng.uniform(0.5, 0.75)
    theta = np.deg2rad(rng.uniform(-20, 20))
    du, dv = u - cx, v - cy
    x = (np.cos(theta) * du + np.sin(theta) * dv) / radius
    y = (-np.sin(theta) * du + np.cos(theta) * dv) / radius
    mask = shape_mask(cls, x, y)[..., None]
    colour = _hsv(rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0))
    light = rng.uniform(-np.pi, np.pi)
    shade = 1.0 - 0.22 * np.clip(x * np.cos(light) + y * np.sin(light), -1.2, 1.2)[..., None]
    img = np.where(mask, np.clip(colour * shade, 0, 1), _background(rng, u, v, backgrounds))
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3)) * 255.0
    img += rng.normal(0, 1.0, img.shape) * pixel_noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_split(
    n: int,
    size: int = 32,
    seed: int = 0,
    split: str = "train",
    pixel_noise: float = PIXEL_NOISE,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3, size, size], labels int64 [n]) of one split; image i has class i % 10.

    `backgrounds`: the kinds each image's background is drawn from (uniformly); a set other than the
    default makes other scenes (e.g. `("flat",)`, to measure what the textures cost an evaluator)."""
    if size not in SIZES:
        raise DataError(f"size: the demo data comes in {', '.join(map(str, SIZES))} px, got {size}")
    if split not in SPLITS:
        raise DataError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    if n < 1:
        raise DataError(f"n: must be >= 1, got {n}")
    if not 0 <= pixel_noise <= 64:
        raise DataError(f"pixel_noise: must be in [0, 64] levels, got {pixel_noise}")
    unknown = [k for k in backgrounds if k not in BACKGROUND_KINDS]
    if unknown or not backgrounds:
        raise DataError(
            f"backgrounds: must be one or more of {', '.join(BACKGROUND_KINDS)}, got {', '.join(backgrounds) or 'none'}"
        )
    backgrounds = tuple(backgrounds)
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    images = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        images[i] = render(
            int(labels[i]),
            size,
            np.random.default_rng([seed, SPLITS[split], i]),
            pixel_noise,
            backgrounds,
        ).transpose(2, 0, 1)
    return images, labels


def write_demo_data(
    out: str | Path,
    size: int = 32,
    n_train: int = 10_000,
    n_test: int = 2_000,
    seed: int = 0,
    format: str = "folder",
    pixel_noise: float = PIXEL_NOISE,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
) -> dict:
    """Write both splits: `folder` = OUT/{train,test}/<class>/<index>.png, `npz` = OUT/{train,test}.npz.

    OUT/demo.json records how it was made. Returns that record.
    """
    # refuses a bad size, noise or background kind before the folder exists
    make_split(1, size, seed, "train", pixel_noise, backgrounds)
    if format not in ("folder", "npz"):
        raise DataError(f"format: must be folder or npz, got {format!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: folder exists and is not empty (choose a new --out)")
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = make_split(n, size, seed, split, pixel_noise, backgrounds)
        if format == "npz":
            import io

            buf = io.BytesIO()
            np.savez(buf, images=images.transpose(0, 2, 3, 1), labels=labels, class_names=np.array(CLASSES))
            atomic_write_bytes(out / f"{split}.npz", buf.getvalue())
            continue
        for name in CLASSES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            path = out / split / CLASSES[labels[i]] / f"{i:06d}.png"
            write_file_fast(path, png_bytes(images[i].transpose(1, 2, 0)))
    record = {"generator": "gan_core.demo_data", "version": VERSION, "size": size, "seed": seed, "format": format,
              "pixel_noise": pixel_noise, "backgrounds": list(backgrounds), "train": n_train, "test": n_test, "classes": CLASSES}  # fmt: skip
    atomic_write_bytes(out / "demo.json", (json.dumps(record, indent=2) + "\n").encode())
    return record
