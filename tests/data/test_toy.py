"""2-D toy distributions: sample moments against their exact values."""

import jax
import numpy as np
import pytest
from scipy import integrate

from jaxdiff import data

N = 200_000


def moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def assert_moments(x, mean, cov, var_for_se):
    """Mean within 6 standard errors; covariance within 6 rough standard errors."""
    m, c = moments(x)
    se = np.sqrt(np.asarray(var_for_se) / len(x))
    np.testing.assert_array_less(np.abs(m - mean), 6 * se)
    np.testing.assert_allclose(c, cov, atol=6 * np.max(var_for_se) * np.sqrt(2 / len(x)) * 2)


def test_gaussian_mixture_moments():
    means = np.array([[-2.0, 0.0], [1.0, 1.0], [3.0, -2.0]])
    w = np.array([0.2, 0.5, 0.3])
    x = data.gaussian_mixture(jax.random.key(0), N, means=means, scale=0.3, weights=w)
    assert x.shape == (N, 2) and x.dtype == np.float32
    mean = w @ means
    cov = 0.09 * np.eye(2) + (means * w[:, None]).T @ means - np.outer(mean, mean)
    assert_moments(x, mean, cov, np.diag(cov))
    # Component frequencies: distance to the nearest mean identifies the component.
    nearest = np.argmin(((np.asarray(x)[:, None] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest) / N, w, atol=0.01)


def test_ring_of_gaussians_modes():
    x = np.asarray(data.ring_of_gaussians(jax.random.key(1), N, num_modes=8, radius=2.0,
                                          scale=0.05))
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r.mean(), 2.0, atol=0.01)
    angle = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)).astype(int) % 8
    np.testing.assert_allclose(np.bincount(angle) / N, np.full(8, 1 / 8), atol=0.01)


def test_two_moons_moments():
    noise = 0.1
    x = data.two_moons(jax.random.key(2), N, noise=noise)
    assert x.shape == (N, 2)
    mean = np.array([0.5, 0.25])
    cov = np.array([[0.75, 0.125 - 1 / np.pi], [0.125 - 1 / np.pi, 0.5625 - 1 / np.pi]])
    cov = cov + noise**2 * np.eye(2)
    assert_moments(x, mean, cov, np.diag(cov))


def test_swiss_roll_moments():
    lo, hi = 1.5 * np.pi, 4.5 * np.pi

    def expect(f):
        return integrate.quad(f, lo, hi, limit=200)[0] / (hi - lo)

    mean = np.array([expect(lambda t: t * np.cos(t)), expect(lambda t: t * np.sin(t))])
    sxx = expect(lambda t: (t * np.cos(t)) ** 2) - mean[0] ** 2
    syy = expect(lambda t: (t * np.sin(t)) ** 2) - mean[1] ** 2
    sxy = expect(lambda t: t * t * np.cos(t) * np.sin(t)) - mean[0] * mean[1]
    cov = np.array([[sxx, sxy], [sxy, syy]])
    x = data.swiss_roll(jax.random.key(3), N)
    assert_moments(x, mean, cov, np.diag(cov))
    np.testing.assert_array_less(np.linalg.norm(np.asarray(x), axis=1), hi * 1.0001)


def test_toy_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_samples"):
        data.two_moons(key, 0)
    with pytest.raises(ValueError, match="noise"):
        data.swiss_roll(key, 4, noise=-1.0)
    with pytest.raises(ValueError, match="means"):
        data.gaussian_mixture(key, 4, means=np.zeros(3), scale=1.0)
    with pytest.raises(ValueError, match="weights"):
        data.gaussian_mixture(key, 4, means=np.zeros((2, 2)), scale=1.0, weights=[1.0])
    with pytest.raises(ValueError, match="scale"):
        data.gaussian_mixture(key, 4, means=np.zeros((2, 2)), scale=0.0)
