"""Gaussian (continuous-state) diffusion as pure functions; no Flax.

Discrete time: :class:`Schedule` pytrees of arrays of ``T`` steps. Continuous time: a
:class:`Path` ``x_t = alpha(t) x0 + sigma(t) eps`` (rectified flow, VP, VE / EDM) with its
time densities, weighted loss and ODE samplers. Every loss, sampler and likelihood talks to a
plain ``denoise_fn(x_t, t, cond=None) -> prediction`` (``t`` integer steps of a schedule, or
the path's float times). :func:`schedule_path` and :func:`discrete_view` carry a model from
one clock to the other, so that every sampler and bound runs on both.
"""

from jaxdiff.gaussian.analytic import THREE_GAUSSIANS, GaussianMixture
from jaxdiff.gaussian.bridges import VIEW_PREDICTION, discrete_view, schedule_path
from jaxdiff.gaussian.continuous import (
    DENSITIES,
    continuous_loss,
    draw_times,
    loss_weight,
    resolution_shift,
    shift_times,
)
from jaxdiff.gaussian.continuous import WEIGHTINGS as PATH_WEIGHTINGS
from jaxdiff.gaussian.edm import SIGMA_DATA, edm_denoiser, edm_scalings
from jaxdiff.gaussian.forward import (
    PREDICTIONS,
    alpha_sigma,
    clip_x0_and_eps,
    prediction_target,
    q_posterior,
    q_sample,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.learned_schedule import (
    init_learned_schedule,
    learned_gamma,
    learned_path,
)
from jaxdiff.gaussian.likelihood import (
    nll_bits_per_dim,
    ode_nll,
    path_nll_bits_per_dim,
    path_ode_nll,
    vlb_terms,
)
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
from jaxdiff.gaussian.ode import DEFAULT_STEPS, GRID_SPACINGS, SOLVERS, ode_sample, time_grid
from jaxdiff.gaussian.paths import (
    CONTINUOUS_PREDICTIONS,
    PATHS,
    Path,
    coefficients,
    eps_error_scale,
    get_path,
    output_target,
    rectified_flow,
    ve,
    vp_cosine,
    vp_linear,
    vp_log_linear,
    vp_sigmoid,
    with_model_time,
    x0_eps_from_output,
)
from jaxdiff.gaussian.reflow import check_pure_noise_end, reflow_pairs
from jaxdiff.gaussian.reverse import VARIANCES, model_log_variance, p_mean_variance
from jaxdiff.gaussian.samplers import (
    DEFAULT_SPACINGS,
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
from jaxdiff.gaussian.vdm import vdm_bits_per_dim, vdm_terms, vdm_times

__all__ = [
    "CONTINUOUS_PREDICTIONS", "DEFAULT_SPACINGS", "DEFAULT_STEPS", "DENSITIES", "GRID_SPACINGS",
    "PATHS", "PATH_WEIGHTINGS", "PREDICTIONS", "SAMPLERS", "SIGMA_DATA", "SOLVERS", "SPACINGS",
    "THREE_GAUSSIANS", "VARIANCES", "VIEW_PREDICTION", "WEIGHTINGS", "DPMSolverState",
    "GaussianMixture", "Path", "Schedule", "alpha_sigma", "check_pure_noise_end",
    "clip_x0_and_eps", "coefficients", "continuous_loss", "cosine_schedule", "ddim_step",
    "ddpm_step", "decoder_nll", "discrete_view", "discretized_gaussian_log_likelihood",
    "dpm_solver_step", "draw_times", "edm_denoiser", "edm_scalings", "eps_error_scale",
    "gaussian_log_likelihood", "get_path", "guided_denoiser", "heun_step", "init_learned_schedule",
    "learned_gamma", "learned_path", "linear_schedule", "loss", "loss_weight",
    "model_log_variance", "nll_bits_per_dim", "normal_kl", "ode_nll", "ode_sample",
    "output_target", "p_mean_variance", "path_nll_bits_per_dim", "path_ode_nll",
    "prediction_target", "prior_kl", "q_posterior", "q_sample", "rectified_flow", "reflow_pairs",
    "resolution_shift", "respace", "sample", "sampling_timesteps", "schedule_path",
    "schedule_from_betas", "schedule_from_log_snrs", "shift_times", "sigmoid_schedule",
    "snr_weight", "time_grid", "vdm_bits_per_dim", "vdm_terms", "vdm_times", "ve", "vlb_term",
    "vlb_terms", "vp_cosine", "vp_linear", "vp_log_linear", "vp_sigmoid", "with_model_time",
    "x0_eps_from_output", "x0_eps_from_prediction",
]
