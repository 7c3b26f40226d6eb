"""Metric arithmetic against closed forms and hand-computed tiny feature sets."""

import math

import numpy as np
import pytest

from training import metrics as M


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([3.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()  # 13 + (1 + 1 + 4)
    assert expected == 19.0
    assert M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(19.0, abs=1e-9)


def test_frechet_distance_full_covariances():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    s = a @ a.T + np.eye(4)
    assert M.frechet_distance(np.zeros(4), s, np.ones(4), s) == pytest.approx(4.0, abs=1e-8)
    # scaled copy: S2 = 4 S1 -> Tr(S1 + 4 S1 - 2 * 2 S1) = Tr(S1)
    assert M.frechet_distance(np.zeros(4), s, np.zeros(4), 4 * s) == pytest.approx(np.trace(s), rel=1e-9)


def test_frechet_distance_singular_covariance_falls_back_to_eps():
    s = np.diag([1.0, 0.0, 0.0])  # rank 1: the product is singular
    d = M.frechet_distance(np.zeros(3), s, np.array([2.0, 0, 0]), s)
    assert math.isfinite(d) and d == pytest.approx(4.0, abs=1e-4)


def test_fid_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal([1.0, 0.0], [1.0, 2.0], size=(20000, 2))
    # 1 + (1 + 4 - 2*2) = 2
    assert M.fid(a, b) == pytest.approx(2.0, abs=0.1)
    assert M.fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_gaussian_stats_are_float64_and_reject_one_row():
    mu, cov = M.gaussian_stats(np.ones((5, 3), np.float32))
    assert mu.dtype == np.float64 and cov.shape == (3, 3)
    with pytest.raises(ValueError, match=r"need features \[N >= 2, D\]"):
        M.gaussian_stats(np.ones((1, 3)))


def test_classifier_score_bounds():
    confident = np.eye(10)[np.arange(1000) % 10] * 50.0
    assert M.classifier_score(confident) == pytest.approx(10.0, rel=1e-6)
    assert M.classifier_score(np.zeros((100, 10))) == pytest.approx(1.0)
    one_class = np.eye(10)[np.zeros(100, int)] * 50.0
    assert M.classifier_score(one_class) == pytest.approx(1.0, abs=1e-6)
    two_classes = np.eye(10)[np.arange(100) % 2] * 50.0
    assert M.classifier_score(two_classes) == pytest.approx(2.0, rel=1e-6)


def test_knn_radii_on_a_line():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(M.knn_radii(x, k=1), [1, 1, 2, 4])
    np.testing.assert_allclose(M.knn_radii(x, k=2), [3, 2, 3, 6])
    with pytest.raises(ValueError, match="more than k=5 points"):
        M.knn_radii(x)


def test_prdc_hand_computed():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: 1, 1, 1, 1
    fake = np.array([[0.75], [1.0], [50.0], [51.0]])  # k=1 radii: .25, .25, 1, 1
    r = M.prdc(real, fake, k=1, chunk=3)  # chunk < len exercises the chunked loop
    # 0.75 lies in the balls of 0 and 1; 1.0 in the ball of 1 only (strict <); 50 and 51 in none
    assert r["precision"] == 0.5
    assert r["density"] == 0.75  # (2 + 1 + 0 + 0) / (k * 4)
    assert r["coverage"] == 0.5  # reals 0 and 1 hold a fake
    assert r["recall"] == 0.25  # only real 1 lies in a fake ball (that of 1.0)


def test_prdc_identical_sets_and_cached_radii():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 8))
    r = M.prdc(x, x.copy(), k=5)
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["coverage"] == 1.0
    # ball i strictly holds itself and its k-1 nearer neighbours: k per ball, so density is exactly 1
    assert r["density"] == pytest.approx(1.0)
    assert M.prdc(x, x[:50] + 100, k=5, real_radii=M.knn_radii(x, 5)) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def test_modes_shares_coverage_and_kl():
    predicted = np.array([0] * 50 + [1] * 49 + [2])
    m = M.modes(predicted, np.ones(10))
    assert m["shares"][:3] == [0.5, 0.49, 0.01] and m["covered"] == 2 and m["num_classes"] == 10
    p = (np.bincount(predicted, minlength=10) + 1) / 110
    assert m["kl_to_data"] == pytest.approx(float((0.1 * np.log(0.1 / p)).sum()))
    assert M.modes(np.arange(1000) % 10, np.ones(10))["kl_to_data"] == pytest.approx(0.0, abs=1e-12)


def test_class_accuracy():
    logits = np.eye(3)[[0, 1, 2, 2]]
    assert M.class_accuracy(logits, np.array([0, 1, 2, 0])) == 0.75
