"""The real side of every comparison: which data, and its features, k-NN radii and statistics, cached.

The reference data of a generator is the data it was trained on (its card's dataset source, loaded
with the recorded preprocessing) unless `--data` says otherwise; an image set is compared with its
own test split when it has one, else with MNIST.
Features are cached per evaluator + data + n, in memory and on disk ($GAN_EVAL_CACHE), so repeated
evaluations only pay for the samples; `fid_floor` is the FID of real training images against the
reference.
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
from gan_core.preprocess import Preprocess
from training import metrics as M
from training.evaluation.classifier import EvaluationError, Evaluator
from training.evaluation.sampling import subset_indices
from training.evaluation.store import data_source_of

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
    classes_differ = ev.measures_classes and ds.num_classes != ev.card.num_classes
    if ds.image_shape != tuple(ev.card.image_shape) or classes_differ:
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
    """FID of n real training images (a dataset, or a path's train split) against the reference."""
    from gan_core.datasets import load_dataset

    train = data if hasattr(data, "images") else load_dataset(data, "train")
    if train.fingerprint() == ref.info["fingerprint"]:
        return None
    tr = real_reference(ev, train, "train", n, seed)
    return M.frechet_distance(ref.mu, ref.cov, tr.mu, tr.cov)


def reference_source(card, data, target=None) -> tuple[str | None, Preprocess]:
    """(data path or None = MNIST, preprocessing) of the real images a target is compared with.

    A generator is compared with the data it was trained on, prepared as its card records; its
    card's source may live on another machine, then the data an evaluator bound to its fingerprint
    was read from is used, else `--data` is needed. An image-set target is compared with its own
    test split when it has one (a dataset's train split: the real-vs-real floor), else with MNIST.
    """
    from gan_core.datasets import has_split

    dataset = card.dataset if card is not None else {}
    prep = Preprocess.from_card(dataset.get("preprocess"))
    if data is not None:
        return data, prep
    if card is None:
        return (str(target) if target is not None and has_split(target, "test") else None), prep
    source = dataset.get("source")
    if source and Path(source).exists():
        return source, prep
    found = data_source_of(dataset.get("fingerprint"))
    if found is not None:
        return found, prep
    raise EvaluationError(
        f"{card.name} was trained on {source or 'unrecorded data'}, which is not here; pass --data PATH to that data"
    )
