"""The real side of every comparison: features, k-NN radii and statistics of real images, cached.

Cached per evaluator + data + n, in memory and on disk ($GAN_EVAL_CACHE), so repeated evaluations
only pay for the samples; `fid_floor` is the FID of real training images against the reference.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gan_core.fileio import atomic_write_bytes
from training import metrics as M
from training.evaluation.sampling import subset_indices
from training.evaluator import EvaluationError, Evaluator

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class Reference:
    """Real features, their k-NN radii and Gaussian statistics, plus the data's class shares."""

    features: np.ndarray
    radii: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    class_shares: np.ndarray
    info: dict[str, Any]
    images: np.ndarray | None = None
    labels: np.ndarray | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("GAN_EVAL_CACHE") or Path.home() / ".cache" / "gan-service" / "eval")


_REFS: dict[str, Reference] = {}


def real_reference(
    ev: Evaluator,
    data=None,
    split: str = "test",
    n: int = 10_000,
    seed: int = 0,
    k: int = M.NN_K,
    keep_images: bool = False,
) -> Reference:
    """Features, k-NN radii and statistics of n real images of `data`'s split, cached by content."""
    from gan_core.datasets import load_dataset

    ds = data if hasattr(data, "images") else load_dataset(data, split)
    if ds.image_shape != tuple(ev.card.image_shape) or ds.num_classes != ev.card.num_classes:
        raise EvaluationError(
            f"{ds.source}: reference data ({ds.image_shape}, {ds.num_classes} classes) does not match evaluator "
            f"{ev.id!r} ({tuple(ev.card.image_shape)}, {ev.card.num_classes} classes)"
        )
    idx = subset_indices(len(ds), n, seed)
    fp = ds.fingerprint()
    key = f"v{CACHE_VERSION}-{ev.id}-{ev.card.weights_sha256[:12]}-{fp}-n{len(idx)}-s{seed}-k{k}"
    info = {
        "source": ds.source,
        "split": ds.meta.get("split", split),
        "n": int(len(idx)),
        "fingerprint": fp,
        "seed": seed,
    }
    ref = _REFS.get(key)
    if ref is None:
        path = cache_dir() / f"{key}.npz"
        try:
            with np.load(path) as z:
                ref = Reference(z["features"], z["radii"], z["mu"], z["cov"], z["class_shares"], info)
        except (OSError, KeyError, ValueError):
            feats, _ = ev.features_and_logits(ds.images[idx])
            mu, cov = M.gaussian_stats(feats)
            shares = ds.class_counts() / len(ds)
            ref = Reference(feats, M.knn_radii(feats, k), mu, cov, shares, info)
            buf = io.BytesIO()
            np.savez(buf, features=ref.features, radii=ref.radii, mu=mu, cov=cov, class_shares=shares)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError as e:  # a read-only cache only costs speed
                log.info("cannot write evaluation cache %s: %s", path, e)
        _REFS[key] = ref
    if keep_images and ref.images is None:
        ref.images, ref.labels = ds.images[idx], ds.labels[idx]
    return ref


def fid_floor(ev: Evaluator, data, n: int, seed: int, ref: Reference) -> float | None:
    """FID of n real training images against the reference: the best a generator can expect."""
    from gan_core.datasets import load_dataset

    train = load_dataset(data, "train")
    if train.fingerprint() == ref.info["fingerprint"]:
        return None
    tr = real_reference(ev, train, "train", n, seed)
    return M.frechet_distance(ref.mu, ref.cov, tr.mu, tr.cov)
