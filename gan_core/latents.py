"""Seeded latents: image i of seed s gets its own numpy generator, seeded by (s, i).

That makes latent i independent of the request's count, batching and concurrency, and of
restarts: the same (seed, index, truncation) always gives the same vector, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_SEED = 2**63 - 1


def latent(seed: int, index: int, dim: int, truncation: float | None = None) -> np.ndarray:
    """One float32 N(0, 1) vector; with `truncation` t, entries with |z| > t are redrawn (truncation trick)."""
    rng = np.random.default_rng([seed, index])
    z = rng.standard_normal(dim, dtype=np.float32)
    if truncation is not None:
        bad = np.abs(z) > truncation
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
            bad = np.abs(z) > truncation
    return z


def latents(
    seed: int, indices: Sequence[int] | range, dim: int, truncation: float | None = None
) -> np.ndarray:
    """[len(indices), dim] float32; row k is `latent(seed, indices[k], dim, truncation)`."""
    out = np.empty((len(indices), dim), np.float32)
    for k, i in enumerate(indices):
        out[k] = latent(seed, i, dim, truncation)
    return out


def balanced_labels(indices: Sequence[int] | range, num_classes: int) -> np.ndarray:
    """Label of image i under 'balanced' is i mod num_classes: stable whatever the count."""
    return np.asarray(indices, dtype=np.int64) % num_classes
