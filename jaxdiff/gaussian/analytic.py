r"""Analytic optimal denoisers for Gaussian-mixture data: oracles for samplers and bounds.

For :math:`x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, s_k^2 I)` and
:math:`x_t = \alpha x_0 + \sigma\epsilon`, the marginal is
:math:`\sum_k \pi_k \mathcal N(\alpha\mu_k, (\alpha^2 s_k^2 + \sigma^2) I)` and the optimal
(MMSE) noise prediction is :math:`\hat\epsilon = -\sigma \nabla_x \log p_t(x)`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.gaussian.forward import alpha_sigma, prediction_target


class GaussianMixture:
    r"""An isotropic Gaussian mixture :math:`\sum_k \pi_k \mathcal N(\mu_k, s_k^2 I)`."""

    def __init__(self, weights, means, stds):
        self.weights = np.asarray(weights, np.float64)
        self.means = np.asarray(means, np.float64)      # [K, D]
        self.stds = np.asarray(stds, np.float64)        # [K]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` float64 draws ``[n, D]``."""
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.means.shape[1]))
        return self.means[comp] + self.stds[comp, None] * noise

    def eps(self, x_t, alpha, sigma):
        """Optimal eps for ``x_t`` [B, D] at per-example levels ``alpha``, ``sigma`` [B]."""
        a, s = alpha[:, None, None], sigma[:, None, None]            # [B, 1, 1]
        mu = jnp.asarray(self.means, jnp.float32)[None]               # [1, K, D]
        var = a**2 * jnp.asarray(self.stds, jnp.float32)[None, :, None] ** 2 + s**2  # [B,K,1]
        diff = x_t[:, None, :] - a * mu                                # [B, K, D]
        dim = x_t.shape[-1]
        logp = (jnp.log(jnp.asarray(self.weights, jnp.float32))[None]
                - 0.5 * (diff**2 / var).sum(-1) - 0.5 * dim * jnp.log(var[..., 0]))
        resp = jax.nn.softmax(logp, axis=-1)                           # [B, K]
        score = -(resp[..., None] * diff / var).sum(axis=1)            # [B, D]
        return -sigma[:, None] * score

    def denoise_fn(self, schedule, prediction="eps"):
        """``denoise_fn(x_t, t, cond)`` returning the optimal ``prediction``."""
        def fn(x_t, t, cond=None):
            del cond
            alpha, sigma = alpha_sigma(schedule, t)
            eps = self.eps(x_t, alpha, sigma)
            x0 = (x_t - sigma[:, None] * eps) / alpha[:, None]
            return prediction_target(prediction, x0, eps, alpha, sigma)
        return fn


THREE_GAUSSIANS = GaussianMixture(
    weights=[0.5, 0.3, 0.2],
    means=[[-0.6, -0.4], [0.6, -0.3], [0.0, 0.6]],
    stds=[0.1, 0.12, 0.08],
)
"""The 2-D mixture of 3 Gaussians that the sampler tests and the demo reproduce."""
