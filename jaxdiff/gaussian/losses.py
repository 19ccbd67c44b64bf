r"""Training losses and the terms of the variational bound.

The simple loss (Ho et al. 2020, eq. 14) regresses the model output on its target for a
uniformly drawn step :math:`t`:

.. math:: L = w(\lambda_t)\, \mathbb E\, \| f_\theta(x_t, t) - y_t \|^2 / D,
          \quad y_t \in \{\epsilon, x_0, v\},

with :math:`w = 1` (``uniform``, :math:`L_\text{simple}`) or the min-SNR-:math:`\gamma` weight of
Hang et al. 2023. With a learned variance the hybrid loss of Nichol & Dhariwal 2021 (eq. 16)
adds :math:`\lambda\, L_\text{vlb}` with the mean's gradient stopped.

The variational bound (Ho et al. 2020, eq. 5) is
:math:`L_\text{vlb} = L_T + \sum_{t>1} L_{t-1} + L_0` with
:math:`L_{t-1} = \mathrm{KL}(q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t))`,
:math:`L_0 = -\log p_\theta(x_0 | x_1)` and
:math:`L_T = \mathrm{KL}(q(x_T|x_0)\,\|\,\mathcal N(0,I))`.
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jaxdiff._validation import check_batch, check_choice, check_timesteps
from jaxdiff.gaussian.forward import (
    alpha_sigma,
    check_prediction,
    expand_to,
    prediction_target,
    q_posterior,
    q_sample,
)
from jaxdiff.gaussian.reverse import p_mean_variance, split_model_output
from jaxdiff.gaussian.schedules import Schedule

WEIGHTINGS = ("uniform", "min_snr")


def sum_per_example(x: jax.Array) -> jax.Array:
    """``[B, ...] -> [B]``: the sum over all but the batch axis."""
    return x.reshape(x.shape[0], -1).sum(axis=1)


def _mean_per_example(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1).mean(axis=1)


def normal_kl(mean1, log_var1, mean2, log_var2) -> jax.Array:
    r"""Elementwise :math:`\mathrm{KL}(\mathcal N(\mu_1, e^{l_1}) \| \mathcal N(\mu_2, e^{l_2}))`
    in nats: :math:`\tfrac12(l_2 - l_1 + e^{l_1 - l_2} + (\mu_1-\mu_2)^2 e^{-l_2} - 1)`."""
    return 0.5 * (log_var2 - log_var1 + jnp.exp(log_var1 - log_var2)
                  + (mean1 - mean2) ** 2 * jnp.exp(-log_var2) - 1.0)


def _log_normal_interval(a: jax.Array, b: jax.Array) -> jax.Array:
    r""":math:`\log(\Phi(b) - \Phi(a))` for finite :math:`a < b`, stable in both tails."""
    # Reflect intervals in the upper tail, then log(Phi(b)) + log1p(-Phi(a)/Phi(b)).
    flip = a > 0
    lo, hi = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    return log_hi + jnp.log1p(-jnp.exp(jnp.minimum(log_lo - log_hi, -1e-12)))


def gaussian_log_likelihood(x, mean, log_var) -> jax.Array:
    r"""Elementwise continuous log-density :math:`\log\mathcal N(x; \mu, e^{l})` in nats."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * jnp.exp(-log_var))


def discretized_gaussian_log_likelihood(x, mean, log_var, *, num_bins: int = 256) -> jax.Array:
    r"""Elementwise log-probability of data on a ``num_bins``-level grid in [-1, 1].

    Ho et al. 2020, eq. 13: the Gaussian mass of the bin
    :math:`[x - \delta, x + \delta]`, :math:`\delta = 1/(K-1)`, with the edge bins extended
    to :math:`\mp\infty`.
    """
    half = 1.0 / (num_bins - 1)
    inv_std = jnp.exp(-0.5 * log_var)
    lower = (x - half - mean) * inv_std
    upper = (x + half - mean) * inv_std
    # Edge bins: every input stays finite so that no gradient meets an infinity.
    return jnp.where(x < -1.0 + half, log_ndtr(upper),
                     jnp.where(x > 1.0 - half, log_ndtr(-lower),
                               _log_normal_interval(lower, upper)))


def decoder_nll(x0, mean, log_var, *, num_bins: int | None) -> jax.Array:
    r""":math:`L_0 = -\log p_\theta(x_0 | x_1)` per example in nats: discretized on
    ``num_bins`` levels, or a continuous Gaussian density when ``num_bins`` is None."""
    if num_bins is None:
        return -sum_per_example(gaussian_log_likelihood(x0, mean, log_var))
    return -sum_per_example(
        discretized_gaussian_log_likelihood(x0, mean, log_var, num_bins=num_bins))


def prior_kl(schedule: Schedule, x0: jax.Array) -> jax.Array:
    r""":math:`L_T = \mathrm{KL}(q(x_T | x_0) \| \mathcal N(0, I))` per example, in nats."""
    t_last = jnp.full((x0.shape[0],), schedule.num_steps - 1, jnp.int32)
    alpha, sigma = alpha_sigma(schedule, t_last)
    log_var = jnp.broadcast_to(expand_to(2.0 * jnp.log(sigma), x0), x0.shape)
    return sum_per_example(normal_kl(expand_to(alpha, x0) * x0, log_var, 0.0, 0.0))


def vlb_term(schedule: Schedule, model_out: jax.Array, x0: jax.Array, x_t: jax.Array,
             t: jax.Array, *, prediction: str = "eps", variance: str = "beta",
             num_bins: int | None = 256, clip_x0: bool = False) -> jax.Array:
    r"""One term of the bound per example, in nats: :math:`L_0` where ``t == 0`` and
    :math:`\mathrm{KL}(q(x_{t-1}|x_t,x_0) \| p_\theta(x_{t-1}|x_t))` elsewhere.

    ``clip_x0`` clips :math:`\hat x_0` to [-1, 1] inside :math:`p_\theta` (improved DDPM's
    ``calc_bpd_loop`` with ``clip_denoised=True``): the bound of the clipped-mean model that
    ``clip_x0`` sampling draws from, a different estimator from the unclipped one."""
    mean, log_var, _, _ = p_mean_variance(schedule, model_out, x_t, t, prediction=prediction,
                                          variance=variance, clip_x0=clip_x0)
    true_mean, _, true_log_var = q_posterior(schedule, x0, x_t, t)
    kl = sum_per_example(normal_kl(true_mean, true_log_var, mean, log_var))
    return jnp.where(t == 0, decoder_nll(x0, mean, log_var, num_bins=num_bins), kl)


def snr_weight(prediction: str, weighting: str, log_snr: jax.Array, *,
               min_snr_gamma: float = 5.0) -> jax.Array:
    r"""Per-example weight of the regression loss in the ``prediction`` parameterisation.

    ``uniform``: 1. ``min_snr`` (Hang et al. 2023): the x0-space weight
    :math:`\min(\mathrm{SNR}, \gamma)` expressed for each target, i.e.
    :math:`\min(\mathrm{SNR},\gamma)/\mathrm{SNR}` for eps, :math:`\min(\mathrm{SNR},\gamma)` for
    x0 and :math:`\min(\mathrm{SNR},\gamma)/(\mathrm{SNR}+1)` for v.
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    if weighting == "uniform":
        return jnp.ones_like(log_snr)
    snr = jnp.exp(log_snr)
    clipped = jnp.minimum(snr, min_snr_gamma)
    return {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1.0)}[prediction]


def loss(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array, *,
         prediction: str = "eps", cond=None, t: jax.Array | None = None,
         weighting: str = "uniform", min_snr_gamma: float = 5.0,
         learned_variance: bool = False, vlb_weight: float = 0.001,
         num_bins: int | None = 256) -> jax.Array:
    r"""The per-example training loss ``[B]``.

    .. math::
        L = w(\lambda_t)\,\tfrac1D\|f_\theta(x_t,t)-y_t\|^2
            \;[+\; \lambda\, T\, L_{t-1}^\text{sg}/(D\ln 2)]

    The bracket is the hybrid term used with ``learned_variance=True`` (Nichol & Dhariwal
    2021, Sec. 3.1): the bound's term at the drawn :math:`t` in bits/dim, times ``T`` (its
    uniform-:math:`t` estimate of the full bound), weighted by ``vlb_weight`` = 0.001, with the
    gradient of the mean stopped so that it only trains the variance.

    Args:
      key: PRNG key for ``t`` (unless given) and the noise.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> prediction``.
      schedule: the noise schedule.
      x0: clean data ``[B, ...]``.
      prediction: ``eps``, ``x0`` or ``v``.
      cond: conditioning passed to ``denoise_fn``.
      t: optional fixed ``int32 [B]`` steps (e.g. per-timestep diagnostics); uniform if None.
      weighting: ``uniform`` (L_simple) or ``min_snr``.
      min_snr_gamma: :math:`\gamma` of the min-SNR weighting.
      learned_variance: the model outputs twice the channels; adds the VLB term.
      vlb_weight: :math:`\lambda` of the hybrid loss.
      num_bins: data grid of the decoder term at ``t == 0``; None for continuous data.
    """
    check_batch("x0", x0)
    check_prediction(prediction)
    check_choice("weighting", weighting, WEIGHTINGS)
    batch = x0.shape[0]
    key_t, key_noise = jax.random.split(key)
    if t is None:
        t = jax.random.randint(key_t, (batch,), 0, schedule.num_steps, dtype=jnp.int32)
    check_timesteps("t", t, batch, schedule.num_steps)
    noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    x_t = q_sample(schedule, x0, t, noise)
    model_out = denoise_fn(x_t, t, cond)
    pred, variance_values = split_model_output(model_out, x_t, learned_variance)
    alpha, sigma = alpha_sigma(schedule, t)
    target = prediction_target(prediction, x0, noise, alpha, sigma)
    weight = snr_weight(prediction, weighting, schedule.log_snrs[t], min_snr_gamma=min_snr_gamma)
    mse = weight * _mean_per_example((pred - target) ** 2)
    if not learned_variance:
        return mse
    frozen_out = jnp.concatenate([jax.lax.stop_gradient(pred), variance_values], axis=-1)
    vlb = vlb_term(schedule, frozen_out, x0, x_t, t, prediction=prediction, variance="learned",
                   num_bins=num_bins)
    dims = math.prod(x0.shape[1:])
    return mse + vlb_weight * schedule.num_steps * vlb / (dims * math.log(2.0))
