"""2-D toy distributions for fast experiments; key first, ``float32[N, 2]`` samples.

Their first two moments are known (see each docstring), so tests and analytic denoisers
can use them: the optimal denoiser for a Gaussian mixture is available in closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _check_num(num_samples):
    if not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")


def _check_noise(noise):
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")


def gaussian_mixture(key: jax.Array, num_samples: int, *, means, scale: float,
                     weights=None) -> jax.Array:
    r"""Samples an isotropic Gaussian mixture in any dimension ``D``.

    .. math:: x \sim \sum_k w_k \, \mathcal N(\mu_k, \sigma^2 I),\quad
       \mathbb E[x] = \sum_k w_k \mu_k,\quad
       \mathrm{Cov}[x] = \sigma^2 I + \sum_k w_k \mu_k \mu_k^\top - \mathbb E[x]\mathbb E[x]^\top

    Args:
      key: PRNG key.
      num_samples: ``N``.
      means: ``[K, D]`` component means.
      scale: the common standard deviation ``sigma > 0``.
      weights: ``[K]`` non-negative component weights (normalised here); ``None``: uniform.

    Returns:
      ``float32[N, D]``.
    """
    _check_num(num_samples)
    means = jnp.asarray(means, jnp.float32)
    if means.ndim != 2:
        raise ValueError(f"means must have shape [K, D], got {means.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    k = means.shape[0]
    if weights is None:
        logits = jnp.zeros((k,), jnp.float32)
    else:
        weights = jnp.asarray(weights, jnp.float32)
        if weights.shape != (k,) or bool(jnp.any(weights < 0)) or not float(weights.sum()) > 0:
            raise ValueError(f"weights must be {k} non-negative values, not all zero, got "
                             f"{weights}")
        logits = jnp.log(weights)
    key_c, key_n = jax.random.split(key)
    component = jax.random.categorical(key_c, logits, shape=(num_samples,))
    noise = jax.random.normal(key_n, (num_samples, means.shape[1]), jnp.float32)
    return means[component] + jnp.float32(scale) * noise


def ring_of_gaussians(key: jax.Array, num_samples: int, *, num_modes: int = 8,
                      radius: float = 2.0, scale: float = 0.05) -> jax.Array:
    """The classic "8 Gaussians": ``num_modes`` equal modes evenly spaced on a circle."""
    if not isinstance(num_modes, int) or num_modes < 1:
        raise ValueError(f"num_modes must be a positive int, got {num_modes!r}")
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return gaussian_mixture(key, num_samples, means=means, scale=scale)


def two_moons(key: jax.Array, num_samples: int, *, noise: float = 0.0) -> jax.Array:
    r"""Two interleaving half circles (as scikit-learn's ``make_moons``), equal halves in law.

    Upper moon ``(\cos t, \sin t)``, lower moon ``(1 - \cos t, 1/2 - \sin t)``,
    ``t ~ U[0, pi]``, each point picked from either with probability 1/2, plus
    ``N(0, noise^2 I)``. Mean ``(1/2, 1/4)``.
    """
    _check_num(num_samples)
    _check_noise(noise)
    key_t, key_m, key_n = jax.random.split(key, 3)
    t = jax.random.uniform(key_t, (num_samples,), jnp.float32, 0.0, jnp.pi)
    lower = jax.random.bernoulli(key_m, 0.5, (num_samples,))
    x = jnp.where(lower, 1.0 - jnp.cos(t), jnp.cos(t))
    y = jnp.where(lower, 0.5 - jnp.sin(t), jnp.sin(t))
    points = jnp.stack([x, y], axis=1)
    return points + jnp.float32(noise) * jax.random.normal(key_n, points.shape, jnp.float32)


def swiss_roll(key: jax.Array, num_samples: int, *, noise: float = 0.0) -> jax.Array:
    r"""The 2-D Swiss roll (scikit-learn's ``make_swiss_roll`` in the x-z plane).

    ``t = 3 pi / 2 (1 + 2u)``, ``u ~ U[0, 1]``; the point ``(t \cos t, t \sin t)`` plus
    ``N(0, noise^2 I)``. Its moments are one-dimensional integrals over ``t``.
    """
    _check_num(num_samples)
    _check_noise(noise)
    key_t, key_n = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(key_t, (num_samples,), jnp.float32))
    points = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return points + jnp.float32(noise) * jax.random.normal(key_n, points.shape, jnp.float32)
