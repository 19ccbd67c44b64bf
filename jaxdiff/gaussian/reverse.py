r"""The model's reverse step :math:`p_\theta(x_{t-1}|x_t) = \mathcal N(\mu_\theta, \Sigma_\theta)`.

The mean is the forward posterior mean with :math:`x_0` replaced by the model's
:math:`\hat x_0` (Ho et al. 2020, eq. 11, in its x0 form). The variance is fixed
(:math:`\beta_t` or :math:`\tilde\beta_t`, Ho et al. Sec. 3.2) or learned as an interpolation
in the log domain (Nichol & Dhariwal 2021, eq. 15):

.. math::
    \Sigma_\theta = \exp\big(u \log\beta_t + (1 - u)\log\tilde\beta_t\big),\quad
    u = (v_\theta + 1) / 2,

where :math:`v_\theta` is the second half of the model's channels (last axis).
"""

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_choice
from jaxdiff.gaussian.forward import (
    alpha_sigma,
    clip_x0_and_eps,
    expand_to,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.schedules import Schedule

VARIANCES = ("beta", "beta_tilde", "learned")


def check_variance(variance: str) -> None:
    """Raises a ``ValueError`` naming ``variance`` unless it is a known variance choice."""
    check_choice("variance", variance, VARIANCES)


def split_model_output(model_out: jax.Array, x_t: jax.Array, learned_variance: bool):
    """Splits ``model_out`` into ``(prediction, variance_values or None)`` along the last axis.

    A learned-variance model returns twice the channels of ``x_t``; any other returns its shape.
    """
    channels = x_t.shape[-1]
    expected = x_t.shape[:-1] + ((2 * channels,) if learned_variance else (channels,))
    if model_out.shape != expected:
        kind = "twice the channels of x_t (learned variance)" if learned_variance else "x_t's shape"
        raise ValueError(f"denoise_fn must return {kind}: expected {expected}, "
                         f"got {model_out.shape}")
    if not learned_variance:
        return model_out, None
    return model_out[..., :channels], model_out[..., channels:]


def model_log_variance(schedule: Schedule, t: jax.Array, x_t: jax.Array, variance: str,
                       variance_values: jax.Array | None = None) -> jax.Array:
    r"""The log-variance of :math:`p_\theta(x_{t-1}|x_t)`, shaped like ``x_t``.

    ``beta`` gives :math:`\log\beta_t` (at index 0 too, Ho et al.'s :math:`\sigma_1^2 =
    \beta_1`); ``beta_tilde`` the clipped :math:`\log\tilde\beta_t`; ``learned`` the
    interpolation between the two with ``variance_values`` in [-1, 1].
    """
    check_variance(variance)
    log_beta = expand_to(jnp.log(schedule.betas[t]), x_t)
    log_beta_tilde = expand_to(schedule.posterior_log_variance_clipped[t], x_t)
    if variance == "beta":
        return jnp.broadcast_to(log_beta, x_t.shape)
    if variance == "beta_tilde":
        return jnp.broadcast_to(log_beta_tilde, x_t.shape)
    if variance_values is None:
        raise ValueError("variance='learned' needs a model output with twice the channels")
    frac = (variance_values + 1.0) / 2.0
    return frac * log_beta + (1.0 - frac) * log_beta_tilde


def p_mean_variance(schedule: Schedule, model_out: jax.Array, x_t: jax.Array, t: jax.Array, *,
                    prediction: str, variance: str, clip_x0: bool = False):
    r"""Mean and log-variance of :math:`p_\theta(x_{t-1} | x_t)` from a raw model output.

    Args:
      schedule: the schedule whose index ``t`` this step is (a respaced one when sampling
        with fewer steps).
      model_out: ``denoise_fn``'s output for ``x_t`` (twice the channels if learned variance).
      x_t: the current noisy batch.
      t: ``int32 [B]`` indices into ``schedule``.
      prediction: what the model predicts: ``eps``, ``x0`` or ``v``.
      variance: ``beta``, ``beta_tilde`` or ``learned``.
      clip_x0: clip :math:`\hat x_0` to [-1, 1] (Ho et al.'s sampler does).

    Returns:
      ``(mean, log_variance, x0_hat, eps_hat)``, each shaped like ``x_t``; ``eps_hat`` is
      consistent with the (possibly clipped) ``x0_hat``.
    """
    check_variance(variance)
    pred, variance_values = split_model_output(model_out, x_t, variance == "learned")
    alpha, sigma = alpha_sigma(schedule, t)
    x0_hat, eps_hat = x0_eps_from_prediction(prediction, pred, x_t, alpha, sigma)
    if clip_x0:
        x0_hat, eps_hat = clip_x0_and_eps(x0_hat, x_t, alpha, sigma)
    mean = (expand_to(schedule.posterior_mean_coef_x0[t], x_t) * x0_hat
            + expand_to(schedule.posterior_mean_coef_xt[t], x_t) * x_t)
    log_var = model_log_variance(schedule, t, x_t, variance, variance_values)
    return mean, log_var, x0_hat, eps_hat
