"""How images are brought to one size and colour mode when a dataset is loaded (chosen at training time).

Without a policy every image must already share one size and one mode: the loaders refuse the
first file that differs, naming it. `Preprocess(size=S, fit="crop")` scales each image so its
shorter side is S and cuts the centre S x S; `fit="stretch"` resizes to S x S ignoring the aspect;
`channels=1|3` converts every image to grayscale or RGB. The policy is recorded on the model card
(`dataset.preprocess`), so evaluation loads reference data the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gan_core.idx import DataError

FITS = ("crop", "stretch")
# Pillow modes that hold one grey channel (alpha is dropped); every other mode is read as RGB.
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def channels_of_mode(mode: str) -> int:
    return 1 if mode in GRAY_MODES else 3


@dataclass(frozen=True)
class Preprocess:
    """size: square side in pixels (None = keep); fit: crop | stretch; channels: 1 | 3 (None = keep)."""

    size: int | None = None
    fit: str = "crop"
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.size is not None and not 4 <= self.size <= 4096:
            raise DataError(f"image_size: must be in 4..4096 pixels, got {self.size}")
        if self.fit not in FITS:
            raise DataError(f"fit: must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.channels not in (None, 1, 3):
            raise DataError(f"channels: must be 1 (grayscale) or 3 (RGB), got {self.channels}")

    @property
    def active(self) -> bool:
        return self.size is not None or self.channels is not None

    def describe(self) -> dict[str, Any] | None:
        """What the card records; None when images are taken as they are."""
        if not self.active:
            return None
        d: dict[str, Any] = {}
        if self.size is not None:
            d.update(size=self.size, fit=self.fit, resample="lanczos")
        if self.channels is not None:
            d["channels"] = self.channels
        return d

    @classmethod
    def from_card(cls, recorded: dict | None) -> Preprocess:
        recorded = recorded or {}
        return cls(recorded.get("size"), recorded.get("fit", "crop"), recorded.get("channels"))

    def image(self, im):
        """A Pillow image -> uint8 [H, W] or [H, W, 3] after the policy (mode chosen by `channels` or the file)."""
        from PIL import Image

        c = self.channels or channels_of_mode(im.mode)
        im = im.convert("L" if c == 1 else "RGB")
        if self.size is not None and im.size != (self.size, self.size):
            s = self.size
            if self.fit == "crop":
                w, h = im.size
                side = min(w, h)  # the centred square of the source, resized onto s x s in one step
                box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
                im = im.resize((s, s), Image.Resampling.LANCZOS, box=box)
            else:
                im = im.resize((s, s), Image.Resampling.LANCZOS)
        return np.asarray(im)

    def array(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, C, H, W] (C = 1 or 3) -> the policy's uint8 [N, C', S, S]; unchanged when already there."""
        n, c, h, w = images.shape
        want_c = self.channels or c
        if (self.size is None or (h, w) == (self.size, self.size)) and want_c == c:
            return images
        from PIL import Image

        first = self.image(Image.fromarray(_hwc(images[0])))
        out = np.empty((n, *_chw(first).shape), np.uint8)
        out[0] = _chw(first)
        for i in range(1, n):
            out[i] = _chw(self.image(Image.fromarray(_hwc(images[i]))))
        return out


def _hwc(image: np.ndarray) -> np.ndarray:
    """[C, H, W] -> what Pillow takes: [H, W] for one channel, [H, W, 3] for RGB."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def _chw(arr: np.ndarray) -> np.ndarray:
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
