r"""Fréchet distance between Gaussians fitted to features (FID and "classifier FID").

FID (Heusel et al., 2017, "GANs trained by a two time-scale update rule converge to a local
Nash equilibrium") is the Fréchet (2-Wasserstein) distance between Gaussians fitted to the
Inception features of two image sets:

.. math::
    d^2 = \lVert \mu_1 - \mu_2 \rVert^2
          + \operatorname{tr}\bigl(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\bigr).

Any feature extractor gives a Fréchet distance: a digit classifier's penultimate features give
"classifier FID". Everything here is host-side NumPy in float64: the statistics are small
(``D x D``) and float64 is not available under JAX's default configuration.
"""

from typing import NamedTuple

import numpy as np


class FeatureStats(NamedTuple):
    """Mean and covariance of a set of features (float64).

    Attributes:
      mu: ``[D]`` mean.
      sigma: ``[D, D]`` unbiased covariance (``N - 1`` in the denominator).
      num: number of feature vectors ``N`` they were computed from.
    """

    mu: np.ndarray
    sigma: np.ndarray
    num: int


def _check_features(features, name: str) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be a [N, D] array with N >= 2, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite numbers")
    return x.astype(np.float64)


def stats_from_features(features, *, name: str = "features") -> FeatureStats:
    """Mean and unbiased covariance of ``features`` ``[N, D]``, computed in float64
    (``name`` names the argument in error messages)."""
    x = _check_features(features, name)
    mu = x.mean(axis=0)
    centred = x - mu[None, :]
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return FeatureStats(mu, sigma, x.shape[0])


class StatsAccumulator:
    """Streaming :class:`FeatureStats`: ``update`` with batches, then ``result``.

    Keeps the float64 sums :math:`\\sum x` and :math:`\\sum x x^\\top` (as StyleGAN's and EDM's
    metrics do), so memory is ``O(D^2)`` whatever the number of images. Features are
    centred on the first batch's mean before summing, which keeps the covariance accurate
    when the mean is large compared with the spread.
    """

    def __init__(self):
        self._shift = None
        self._sum = None
        self._outer = None
        self._num = 0

    def update(self, features) -> None:
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"features must be a non-empty [B, D] array, got shape {x.shape}")
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        if self._shift is None:
            self._shift = x.mean(axis=0)
            dim = x.shape[1]
            self._sum, self._outer = np.zeros(dim), np.zeros((dim, dim))
        elif x.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"features have dimension {x.shape[1]}, earlier batches had {self._shift.shape[0]}"
            )
        c = x - self._shift[None, :]
        self._sum += c.sum(axis=0)
        self._outer += c.T @ c
        self._num += x.shape[0]

    @property
    def num(self) -> int:
        return self._num

    def result(self) -> FeatureStats:
        if self._num < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self._num}")
        n = self._num
        mean_c = self._sum / n
        sigma = (self._outer - n * np.outer(mean_c, mean_c)) / (n - 1)
        return FeatureStats(self._shift + mean_c, (sigma + sigma.T) / 2, n)


def _check_gaussian(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"mu{name} must be a [D] vector, got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"sigma{name} must be [D, D] = {[mu.shape[0]] * 2} to match mu{name}, "
            f"got shape {sigma.shape}"
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"mu{name} and sigma{name} must be finite")
    scale = max(np.abs(sigma).max(), 1e-300)
    if np.abs(sigma - sigma.T).max() > 1e-5 * scale:  # beyond float32 round-off
        raise ValueError(f"sigma{name} must be symmetric (a covariance matrix)")
    return mu, (sigma + sigma.T) / 2


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; round-off negative eigenvalues -> 0."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))[None, :]) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    r""":math:`\operatorname{tr}\,(\Sigma_1 \Sigma_2)^{1/2}`, stably.

    :math:`\Sigma_1\Sigma_2` is similar to :math:`M = \Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}
    = C C^\top` with :math:`C = \Sigma_1^{1/2} \Sigma_2^{1/2}`, so the eigenvalues of
    :math:`(\Sigma_1\Sigma_2)^{1/2}` are the singular values of :math:`C`, and the trace is
    :math:`C`'s nuclear norm. Symmetric eigendecompositions (for the two square roots) and an
    SVD replace the general (Schur) ``sqrtm`` of a non-symmetric product: no complex
    round-off, and singular covariances (fewer samples than dimensions) keep full accuracy,
    since singular values are exact to round-off where ``sqrt(eig(M))`` would amplify the
    round-off of :math:`M`'s zero eigenvalues. Round-off negative eigenvalues of
    :math:`\Sigma_i` are clipped to zero.
    """
    root1 = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
    root2 = _sqrt_psd(np.asarray(sigma2, dtype=np.float64))
    return float(np.linalg.svd(root1 @ root2, compute_uv=False).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Squared Fréchet distance between :math:`N(\mu_1, \Sigma_1)` and :math:`N(\mu_2,
    \Sigma_2)`, in float64 (see the module docstring; :func:`trace_sqrt_product` for the
    matrix square root)."""
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same dimension, got {mu1.shape} {mu2.shape}")
    diff = mu1 - mu2
    covariance_term = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + covariance_term)


def fid_from_stats(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """Fréchet distance between two :class:`FeatureStats`."""
    return frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)


def fid_from_features(features1, features2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N1, D]``, ``[N2, D]``."""
    return fid_from_stats(
        stats_from_features(features1, name="features1"),
        stats_from_features(features2, name="features2"),
    )
