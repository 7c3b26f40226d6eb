"""PNG encoding and grids: what Pillow (and so torchvision) decodes is exactly what was encoded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gan_core.imaging import float_to_uint8, grid, png_bytes


@pytest.mark.parametrize("channels,mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
@pytest.mark.parametrize("scale", [1, 3])
def test_png_round_trips_through_pillow(channels, mode, scale):
    image = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(png_bytes(image, scale=scale)))
    assert decoded.mode == mode and decoded.size == (7 * scale, 5 * scale)
    expected = image.repeat(scale, axis=0).repeat(scale, axis=1)
    assert np.array_equal(np.asarray(decoded), expected[..., 0] if channels == 1 else expected)


def test_png_is_deterministic_and_compresses_digits():
    digit = np.zeros((28, 28, 1), np.uint8)
    digit[6:22, 12:16] = 255
    assert png_bytes(digit) == png_bytes(digit.copy())
    assert len(png_bytes(digit)) < 28 * 28 // 4


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 1), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8)]
)
def test_png_refuses_what_it_cannot_encode(bad):
    with pytest.raises(ValueError, match=r"uint8 \[H, W, C\]"):
        png_bytes(bad)


def test_grid_places_images_row_major_with_padding():
    images = np.stack([np.full((2, 3, 1), v, np.uint8) for v in (10, 20, 30)])
    g = grid(images, ncols=2, pad=1)
    assert g.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
    assert g[1, 1, 0] == 10 and g[1, 5, 0] == 20 and g[4, 1, 0] == 30 and g[4, 5, 0] == 0


def test_float_to_uint8_rounds_and_clips():
    x = np.array([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0], np.float32).reshape(1, 1, 1, 6)
    assert float_to_uint8(x).ravel().tolist() == [0, 0, 128, 255, 255, 255]
