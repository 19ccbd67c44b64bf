"""Gaussian (continuous-state) diffusion as pure functions; no Flax.

Schedules are :class:`Schedule` pytrees of arrays; every loss, sampler and likelihood talks to
a plain ``denoise_fn(x_t, t, cond=None) -> prediction``.
"""

from jaxdiff.gaussian.analytic import THREE_GAUSSIANS, GaussianMixture
from jaxdiff.gaussian.forward import (
    PREDICTIONS,
    alpha_sigma,
    clip_x0_and_eps,
    prediction_target,
    q_posterior,
    q_sample,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.likelihood import nll_bits_per_dim, ode_nll, vlb_terms
from jaxdiff.gaussian.losses import (
    WEIGHTINGS,
    decoder_nll,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    loss,
    normal_kl,
    prior_kl,
    snr_weight,
    vlb_term,
)
from jaxdiff.gaussian.reverse import VARIANCES, model_log_variance, p_mean_variance
from jaxdiff.gaussian.samplers import (
    SAMPLERS,
    DPMSolverState,
    ddim_step,
    ddpm_step,
    dpm_solver_step,
    guided_denoiser,
    heun_step,
    sample,
)
from jaxdiff.gaussian.schedules import (
    SPACINGS,
    Schedule,
    cosine_schedule,
    linear_schedule,
    respace,
    sampling_timesteps,
    schedule_from_betas,
    schedule_from_log_snrs,
    sigmoid_schedule,
)

__all__ = [
    "PREDICTIONS", "SAMPLERS", "SPACINGS", "THREE_GAUSSIANS", "VARIANCES", "WEIGHTINGS",
    "DPMSolverState", "GaussianMixture", "Schedule", "alpha_sigma", "clip_x0_and_eps",
    "cosine_schedule", "ddim_step", "ddpm_step", "decoder_nll",
    "discretized_gaussian_log_likelihood", "dpm_solver_step", "gaussian_log_likelihood",
    "guided_denoiser", "heun_step", "linear_schedule", "loss",
    "model_log_variance", "nll_bits_per_dim", "normal_kl", "ode_nll", "p_mean_variance",
    "prediction_target", "prior_kl", "q_posterior", "q_sample", "respace", "sample",
    "sampling_timesteps", "schedule_from_betas", "schedule_from_log_snrs", "sigmoid_schedule",
    "snr_weight", "vlb_term", "vlb_terms", "x0_eps_from_prediction",
]
