"""Fréchet distance: float64 NumPy/SciPy references and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from jaxdiff import metrics


def _random_cov(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim + 3))
    return a @ a.T / a.shape[1]


def _scipy_frechet(mu1, s1, mu2, s2):
    """The reference formula of the FID papers' code: scipy.linalg.sqrtm of the product."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(covmean)))


def _exact_sample(rng, mu, sigma, n):
    """n points whose sample mean is exactly mu and unbiased covariance exactly sigma."""
    z = rng.normal(size=(n, mu.shape[0]))
    z -= z.mean(axis=0)
    white = np.linalg.cholesky(z.T @ z / (n - 1))
    z = np.linalg.solve(white, z.T).T  # now z.T z / (n - 1) = I
    return mu + z @ np.linalg.cholesky(sigma).T


@pytest.mark.parametrize("dim", [2, 16, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_matches_scipy_sqrtm(dim, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = _random_cov(rng, dim), _random_cov(rng, dim)
    got = metrics.frechet_distance(mu1, s1, mu2, s2)
    np.testing.assert_allclose(got, _scipy_frechet(mu1, s1, mu2, s2), rtol=1e-9, atol=1e-9)


def test_trace_sqrt_product_singular_covariances():
    # Projections onto overlapping subspaces: tr((P Q)^(1/2)) has a closed form only in
    # special cases, so use P = Q (rank r projection): tr(P^(1/2)) = r.
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    p = q[:, :5] @ q[:, :5].T
    assert metrics.trace_sqrt_product(p, p) == pytest.approx(5.0, abs=1e-9)
    # and a singular pair in general position agrees with scipy where scipy is accurate
    s1, s2 = _random_cov(rng, 20, rank=8), _random_cov(rng, 20)
    ref = np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert metrics.trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("n, dim", [(500, 64), (20, 64)])  # (20, 64): rank-deficient sigma
def test_fid_of_set_with_itself_is_zero(n, dim):
    feats = np.random.default_rng(4).normal(size=(n, dim)).astype(np.float32) * 3 + 1
    assert abs(metrics.fid_from_features(feats, feats)) < 1e-6


def test_fid_of_exact_gaussian_sets_equals_closed_form():
    rng = np.random.default_rng(5)
    dim, n = 8, 400
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    a, b = rng.uniform(0.5, 2.0, size=dim), rng.uniform(0.5, 2.0, size=dim)
    x = _exact_sample(rng, mu1, np.diag(a), n)
    y = _exact_sample(rng, mu2, np.diag(b), n + 37)
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert metrics.fid_from_features(x, y) == pytest.approx(closed, rel=1e-10)

    # proportional full covariances: d^2 = |mu1 - mu2|^2 + (1 - sqrt c)^2 tr(sigma)
    sigma, c = _random_cov(rng, dim), 2.5
    x = _exact_sample(rng, mu1, sigma, n)
    y = _exact_sample(rng, mu2, c * sigma, n)
    closed = np.sum((mu1 - mu2) ** 2) + (1 - np.sqrt(c)) ** 2 * np.trace(sigma)
    assert metrics.fid_from_features(x, y) == pytest.approx(closed, rel=1e-10)


def test_stats_accumulator_equals_one_shot_stats():
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(1003, 32)) * 0.01 + 1e3  # large mean, small spread
    acc = metrics.StatsAccumulator()
    for i in range(0, 1003, 128):
        acc.update(feats[i : i + 128].astype(np.float32))
    got, want = acc.result(), metrics.stats_from_features(feats.astype(np.float32))
    assert got.num == want.num == 1003
    np.testing.assert_allclose(got.mu, want.mu, rtol=1e-12)
    np.testing.assert_allclose(got.sigma, want.sigma, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(want.sigma, np.cov(feats.astype(np.float32).T), rtol=1e-7)


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(7)
    mu, s = np.zeros(3), _random_cov(rng, 3)
    with pytest.raises(ValueError, match="sigma2 must be symmetric"):
        metrics.frechet_distance(mu, s, mu, s + np.triu(np.ones((3, 3)), 1))
    with pytest.raises(ValueError, match="sigma1 must be"):
        metrics.frechet_distance(mu, s[:2, :2], mu, s)
    with pytest.raises(ValueError, match="mu1 and mu2"):
        metrics.frechet_distance(mu, s, np.zeros(2), s[:2, :2])
    with pytest.raises(ValueError, match="features2 must be"):
        metrics.fid_from_features(rng.normal(size=(5, 3)), rng.normal(size=(1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        acc = metrics.StatsAccumulator()
        acc.update(np.zeros((1, 3)))
        acc.result()
    with pytest.raises(ValueError, match="dimension 4"):
        acc = metrics.StatsAccumulator()
        acc.update(np.zeros((2, 3)))
        acc.update(np.zeros((2, 4)))
