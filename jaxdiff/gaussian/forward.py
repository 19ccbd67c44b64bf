r"""The forward process :math:`q` and the conversions between eps, x0 and v predictions.

Notation: :math:`x_t = \alpha_t x_0 + \sigma_t \epsilon` with :math:`\alpha_t^2 =
\bar\alpha_t` and :math:`\sigma_t^2 = 1 - \bar\alpha_t` (Ho et al. 2020, eq. 4), and
:math:`v = \alpha_t \epsilon - \sigma_t x_0` (Salimans & Ho 2022, Sec. 4).
"""

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_batch, check_choice, check_same_shape, check_timesteps
from jaxdiff.gaussian.schedules import Schedule

PREDICTIONS = ("eps", "x0", "v")


def expand_to(coef: jax.Array, x: jax.Array) -> jax.Array:
    """Reshapes a per-example ``[B]`` coefficient to broadcast against ``x`` ``[B, ...]``; a
    scalar is returned as it is (it broadcasts already)."""
    if jnp.ndim(coef) == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim))


def alpha_sigma(schedule: Schedule, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    r""":math:`(\alpha_t, \sigma_t) = (\sqrt{\sigma(\lambda_t)}, \sqrt{\sigma(-\lambda_t)})`."""
    log_snr = schedule.log_snrs[t]
    return jnp.sqrt(jax.nn.sigmoid(log_snr)), jnp.sqrt(jax.nn.sigmoid(-log_snr))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    r"""Draws :math:`x_t \sim q(x_t | x_0) = \mathcal N(\alpha_t x_0, \sigma_t^2 I)`.

    Args:
      schedule: the noise schedule.
      x0: clean data ``[B, ...]``.
      t: ``int32 [B]`` step indices in ``[0, T)``.
      noise: standard normal noise shaped like ``x0``.
    """
    check_batch("x0", x0)
    check_timesteps("t", t, x0.shape[0], schedule.num_steps)
    check_same_shape("noise", noise, "x0", x0)
    alpha, sigma = alpha_sigma(schedule, t)
    return expand_to(alpha, x0) * x0 + expand_to(sigma, x0) * noise


def q_posterior(schedule: Schedule, x0: jax.Array, x_t: jax.Array, t: jax.Array):
    r"""The forward posterior :math:`q(x_{t-1}|x_t,x_0) = \mathcal N(\tilde\mu, \tilde\beta_t I)`.

    .. math::
        \tilde\mu = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t} x_0
                  + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t} x_t

    (Ho et al. 2020, eqs. 6-7). At index 0 the variance is 0 and the mean is :math:`x_0`.

    Returns:
      ``(mean, variance, log_variance)``, each shaped like ``x_t``; the log-variance is the
      clipped one (index 0 takes index 1's value, improved DDPM).
    """
    check_batch("x_t", x_t)
    check_same_shape("x0", x0, "x_t", x_t)
    check_timesteps("t", t, x_t.shape[0], schedule.num_steps)
    mean = (expand_to(schedule.posterior_mean_coef_x0[t], x_t) * x0
            + expand_to(schedule.posterior_mean_coef_xt[t], x_t) * x_t)
    var = jnp.broadcast_to(expand_to(schedule.posterior_variance[t], x_t), x_t.shape)
    log_var = jnp.broadcast_to(
        expand_to(schedule.posterior_log_variance_clipped[t], x_t), x_t.shape)
    return mean, var, log_var


def check_prediction(prediction: str) -> None:
    """Raises a ``ValueError`` naming ``prediction`` unless it is eps, x0 or v."""
    check_choice("prediction", prediction, PREDICTIONS)


def x0_eps_from_prediction(prediction: str, pred: jax.Array, x_t: jax.Array,
                           alpha: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Turns a model output of kind ``prediction`` into the pair :math:`(\hat x_0, \hat\epsilon)`.

    .. math::
        \text{eps: } \hat x_0 = (x_t - \sigma\hat\epsilon)/\alpha; \quad
        \text{x0: } \hat\epsilon = (x_t - \alpha\hat x_0)/\sigma; \quad
        \text{v: } \hat x_0 = \alpha x_t - \sigma\hat v,\ \hat\epsilon = \sigma x_t + \alpha\hat v.

    ``alpha`` and ``sigma`` are per-example ``[B]``.
    """
    check_prediction(prediction)
    a, s = expand_to(alpha, x_t), expand_to(sigma, x_t)
    if prediction == "eps":
        return (x_t - s * pred) / a, pred
    if prediction == "x0":
        return pred, (x_t - a * pred) / s
    return a * x_t - s * pred, s * x_t + a * pred


def clip_x0_and_eps(x0: jax.Array, x_t: jax.Array, alpha: jax.Array,
                    sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Clips :math:`\hat x_0` to the data range [-1, 1] and makes :math:`\hat\epsilon`
    consistent with it (Ho et al. 2020's sampler clips):

    .. math::
        \hat x_0 \leftarrow \mathrm{clip}(\hat x_0, -1, 1), \quad
        \hat\epsilon = (x_t - \alpha\hat x_0)/\sigma.

    ``alpha`` and ``sigma`` are scalars or per-example ``[B]``.
    """
    x0 = jnp.clip(x0, -1.0, 1.0)
    return x0, (x_t - expand_to(alpha, x_t) * x0) / expand_to(sigma, x_t)


def prediction_target(prediction: str, x0: jax.Array, eps: jax.Array,
                      alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    r"""The regression target for ``prediction``: :math:`\epsilon`, :math:`x_0` or
    :math:`v = \alpha\epsilon - \sigma x_0`."""
    check_prediction(prediction)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return expand_to(alpha, x0) * eps - expand_to(sigma, x0) * x0
