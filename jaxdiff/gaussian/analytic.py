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
from jaxdiff.gaussian.paths import output_target


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

    def _posterior(self, x_t, alpha, sigma):
        r"""Responsibilities ``[B, K]`` and per-component posterior means of :math:`x_0`
        ``[B, K, D]``: :math:`\mu_k + \frac{\alpha s_k^2}{\alpha^2 s_k^2 + \sigma^2}
        (x_t - \alpha\mu_k)`."""
        a, s = alpha[:, None, None], sigma[:, None, None]            # [B, 1, 1]
        dtype = x_t.dtype                                              # float64 too
        mu = jnp.asarray(self.means, dtype)[None]                      # [1, K, D]
        var0 = jnp.asarray(self.stds, dtype)[None, :, None] ** 2       # [1, K, 1]
        var = a**2 * var0 + s**2                                       # [B, K, 1]
        diff = x_t[:, None, :] - a * mu                                # [B, K, D]
        dim = x_t.shape[-1]
        logp = (jnp.log(jnp.asarray(self.weights, dtype))[None]
                - 0.5 * (diff**2 / var).sum(-1) - 0.5 * dim * jnp.log(var[..., 0]))
        return jax.nn.softmax(logp, axis=-1), mu + a * var0 / var * diff

    def eps(self, x_t, alpha, sigma):
        """Optimal eps for ``x_t`` [B, D] at per-example levels ``alpha``, ``sigma`` [B]."""
        return (x_t - alpha[:, None] * self.x0(x_t, alpha, sigma)) / sigma[:, None]

    def x0(self, x_t, alpha, sigma):
        """Optimal (posterior-mean) x0 for ``x_t`` [B, D] at levels ``alpha``, ``sigma``
        [B]; finite at alpha = 0 too."""
        resp, means = self._posterior(x_t, alpha, sigma)
        return (resp[..., None] * means).sum(axis=1)

    def denoise_fn(self, schedule, prediction="eps"):
        """``denoise_fn(x_t, t, cond)`` returning the optimal ``prediction``."""
        def fn(x_t, t, cond=None):
            del cond
            alpha, sigma = alpha_sigma(schedule, t)
            eps = self.eps(x_t, alpha, sigma)
            x0 = (x_t - sigma[:, None] * eps) / alpha[:, None]
            return prediction_target(prediction, x0, eps, alpha, sigma)
        return fn

    def path_denoise_fn(self, path, prediction="velocity"):
        r"""``denoise_fn(x_t, t, cond)`` on a continuous :class:`~jaxdiff.gaussian.paths.Path`
        (``t`` the path's times ``[B]``) returning the optimal ``prediction``: eps, x0, v or
        the velocity :math:`\dot\alpha \hat x_0 + \dot\sigma \hat\epsilon`."""
        def fn(x_t, t, cond=None):
            del cond
            alpha, sigma = path.alpha_sigma(t)
            x0 = self.x0(x_t, alpha, sigma)
            eps = (x_t - alpha[:, None] * x0) / sigma[:, None]
            return output_target(path, prediction, x0, eps, t)
        return fn


THREE_GAUSSIANS = GaussianMixture(
    weights=[0.5, 0.3, 0.2],
    means=[[-0.6, -0.4], [0.6, -0.3], [0.0, 0.6]],
    stds=[0.1, 0.12, 0.08],
)
"""The 2-D mixture of 3 Gaussians that the sampler tests and the demo reproduce."""
