"""Paths between two latent vectors: spherical (slerp) or linear (lerp), both ends included."""

from __future__ import annotations

import math

import numpy as np


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (along the great circle); lerp when a and b are (anti)parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = float(np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-12))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = t[:, None]
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / math.sin(omega)).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None].astype(np.float64)
    return ((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.float32)


def path(a: np.ndarray, b: np.ndarray, steps: int, method: str) -> np.ndarray:
    """[steps, D] latents from a to b, both ends included."""
    t = np.linspace(0.0, 1.0, steps)
    return slerp(a, b, t) if method == "slerp" else lerp(a, b, t)
