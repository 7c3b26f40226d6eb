"""Metric arithmetic on evaluator features and class probabilities: numpy + scipy only, float64 statistics.

- FID (Heusel et al. 2017): Frechet distance between Gaussians fitted to real and generated features.
- Classifier score: exp(E_x KL(p(y|x) || p(y))), the Inception Score with the evaluator; max = #classes.
- Precision / recall (Kynkaanniemi et al. 2019) and density / coverage (Naeem et al. 2020) with
  k-NN balls in the same features.
- Modes: share of samples per predicted class, classes holding >= 2%, KL(data classes || sample classes).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.special import log_softmax

NN_K = 5
MODE_THRESHOLD = 0.02


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of features [N, D]."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); adds eps*I to both when the product is singular."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(covmean).all():  # singular product (e.g. dead features): regularise
        offset = np.eye(s1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # Numerical noise gives tiny imaginary parts; large ones mean the statistics are broken.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm produced a large imaginary component ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean), 0.0))


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(real_features), *gaussian_stats(fake_features))


def classifier_score(logits: np.ndarray) -> float:
    """exp(mean KL(p(y|x) || p(y))) from logits [N, C]: 1 (useless) .. C (confident and balanced)."""
    logp = log_softmax(np.asarray(logits, np.float64), axis=1)
    p = np.exp(logp)
    log_marginal = np.log(p.mean(0) + 1e-300)
    return float(np.exp((p * (logp - log_marginal)).sum(1).mean()))


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] in float64."""
    d2 = _sq_norms(a)[:, None] + _sq_norms(b)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(features: np.ndarray, k: int = NN_K, chunk: int = 1024) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set (float64)."""
    f = np.asarray(features, np.float64)
    if len(f) <= k:
        raise ValueError(f"k-NN radii need more than k={k} points, got {len(f)}")
    out = np.empty(len(f))
    for i in range(0, len(f), chunk):
        d = pairwise_distances(f[i : i + chunk], f)
        # index 0 of the sorted row is the point itself (distance 0), so index k is the k-th neighbour
        out[i : i + chunk] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(
    real: np.ndarray, fake: np.ndarray, k: int = NN_K, real_radii: np.ndarray | None = None, chunk: int = 1024
) -> dict[str, float]:
    """Precision, recall, density, coverage of `fake` against `real` features, k-NN balls of size k.

    precision: share of fakes inside some real ball; recall: share of reals inside some fake ball;
    density: mean number of real balls holding each fake, divided by k; coverage: share of real balls
    holding at least one fake. `real_radii` may be passed in from a cache.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r_real = knn_radii(real, k, chunk) if real_radii is None else np.asarray(real_radii, np.float64)
    r_fake = knn_radii(fake, k, chunk)
    in_real_ball = np.zeros(len(fake), bool)
    ball_counts = np.zeros(len(fake))
    real_covered = np.zeros(len(real), bool)
    real_recalled = np.zeros(len(real), bool)
    for i in range(0, len(fake), chunk):
        d = pairwise_distances(fake[i : i + chunk], real)  # [f, r]
        inside = d < r_real[None, :]
        in_real_ball[i : i + chunk] = inside.any(1)
        ball_counts[i : i + chunk] = inside.sum(1)
        real_covered |= inside.any(0)
        real_recalled |= (d < r_fake[i : i + chunk, None]).any(0)
    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(real_recalled.mean()),
        "density": float(ball_counts.sum() / (k * len(fake))),
        "coverage": float(real_covered.mean()),
    }


def modes(predicted: np.ndarray, data_class_shares: np.ndarray, threshold: float = MODE_THRESHOLD) -> dict:
    """Predicted-class shares, how many classes hold >= threshold, KL(data || samples) in nats.

    The sample distribution is Laplace-smoothed (+1 per class) so a dropped class gives a large,
    finite KL.
    """
    q = np.asarray(data_class_shares, np.float64)
    q = q / q.sum()
    counts = np.bincount(np.asarray(predicted, np.int64), minlength=len(q)).astype(np.float64)
    shares = counts / counts.sum()
    p = (counts + 1.0) / (counts.sum() + len(q))
    nz = q > 0
    return {
        "shares": [round(float(s), 6) for s in shares],
        "covered": int((shares >= threshold).sum()),
        "threshold": threshold,
        "num_classes": len(q),
        "kl_to_data": float((q[nz] * np.log(q[nz] / p[nz])).sum()),
    }


def class_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())
