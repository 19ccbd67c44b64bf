r"""Bridges between the two clocks: every sampler and bound on both kinds of process.

* :func:`schedule_path`: a discrete ``T``-step :class:`~jaxdiff.gaussian.Schedule` as a
  continuous :class:`~jaxdiff.gaussian.paths.Path`, so that the ODE solvers
  (:func:`~jaxdiff.gaussian.ode_sample`), the continuous-time VDM bound
  (:func:`~jaxdiff.gaussian.vdm_terms`) and the path likelihood run on a model trained on
  integer steps. Level ``i`` sits at :math:`t_i = (i + 1)/T`, the log-SNR is the
  piecewise-linear interpolation of the schedule's :math:`\lambda_i` between the levels, and
  the network is told the fractional step :math:`T t - 1` (its own index at every level; a
  sinusoidal step embedding takes fractions).
* :func:`discrete_view`: a model on a path as a discrete ``T``-step schedule and a
  denoiser on integer steps, so that the discrete samplers (ancestral DDPM, DDIM,
  DPM-Solver++, the EDM-form Heun; :func:`~jaxdiff.gaussian.sample`) run on a flow or EDM
  model. A path need not preserve variance; its variance-preserving equivalent is
  :math:`x^{vp} = x_t / s`, :math:`s = \sqrt{\alpha^2 + \sigma^2}`, with
  :math:`\alpha^{vp} = \alpha/s`, :math:`\sigma^{vp} = \sigma/s` and the same log-SNR (the
  identity behind "Euler on rectified flow is DDIM", Song et al. 2021 / Karras et al. 2022).
  The levels are :func:`~jaxdiff.gaussian.time_grid`'s log-SNR grid (evenly in
  :math:`\lambda` between the path's ends clamped to EDM's :math:`\sigma/\alpha \in
  [0.002, 80]`), finite on every path, rectified flow's :math:`\alpha = 0` end included.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import check_int
from jaxdiff.gaussian.forward import expand_to
from jaxdiff.gaussian.ode import time_grid
from jaxdiff.gaussian.paths import (
    Path,
    check_continuous_prediction,
    x0_eps_from_output,
)
from jaxdiff.gaussian.schedules import Schedule, schedule_from_log_snrs

VIEW_PREDICTION = "v"
"""What :func:`discrete_view`'s denoiser predicts: the VP ``v``, from which both
:math:`\\hat x_0 = \\alpha x - \\sigma v` and :math:`\\hat\\epsilon = \\sigma x + \\alpha v` are
recovered without dividing by a level that vanishes at either end."""


def schedule_path(schedule: Schedule) -> Path:
    r"""The continuous path through ``schedule``'s levels (module docstring):
    :math:`t \in [1/T, 1]`, :math:`\lambda(t_i) = \lambda_i` at :math:`t_i = (i + 1)/T`,
    linear in between, :math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`; ``model_time(t) =
    T t - 1``. Its samplers' default grid is ``log_snr`` (clamped to EDM's range): a uniform
    grid's first step from t = 1, where the cosine schedule's :math:`\alpha \approx 5e{-5}`
    and :math:`\dot\alpha/\alpha \approx -3500`, multiplies a learned eps model's error by
    ~70 (claim 15 measured it). Needs a concrete (not traced) schedule."""
    if isinstance(schedule.log_snrs, jax.core.Tracer):
        raise ValueError("schedule_path needs a concrete schedule: build it outside jit")
    lams = np.asarray(schedule.log_snrs, np.float64)
    steps = lams.shape[0]
    knots = np.arange(1, steps + 1, dtype=np.float64) / steps

    def log_snr(t):
        return jnp.interp(t, jnp.asarray(knots, jnp.asarray(t).dtype),
                          jnp.asarray(lams, jnp.asarray(t).dtype))

    def time_at(lam):   # lam decreases along the knots: interpolate on the reversed pair
        lam = jnp.asarray(lam)
        return jnp.interp(-lam, jnp.asarray(-lams, lam.dtype), jnp.asarray(knots, lam.dtype))

    def alpha_sigma(t):
        lam = log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))

    return Path(name=f"schedule_{steps}", alpha_sigma=alpha_sigma, log_snr=log_snr,
                time_at=time_at, model_time=lambda t: steps * t - 1.0,
                t_min=float(knots[0]), t_max=1.0, sampling_spacing="log_snr")


def discrete_view(denoise_fn, path: Path, *, prediction: str, num_steps: int = 1000,
                  dtype=jnp.float32) -> tuple[Schedule, object]:
    r"""``(schedule, view_fn)``: the ``num_steps``-level discrete schedule of ``path``'s
    variance-preserving equivalent and ``view_fn(x_vp, t, cond)`` on its integer steps,
    predicting :data:`VIEW_PREDICTION` (module docstring).

    Args:
      denoise_fn: ``denoise_fn(x_t, t, cond) -> output`` on the path's times.
      path: the path the model was trained on.
      prediction: what ``denoise_fn`` outputs (eps, x0, v or velocity).
      num_steps: the schedule's ``T``.
      dtype: the schedule's dtype.
    """
    check_continuous_prediction(prediction)
    num_steps = check_int("num_steps", num_steps)
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    times = time_grid(path, num_steps, spacing="log_snr")[::-1].copy()   # clean -> noisy
    with jax.ensure_compile_time_eval():   # a concrete schedule, also when called under jit
        lams = np.asarray(path.log_snr(jnp.asarray(times)), np.float64)
        schedule = schedule_from_log_snrs(lams, dtype=dtype)

    def view_fn(x_vp, t, cond=None):
        t_path = jnp.asarray(times, x_vp.dtype)[t]
        alpha, sigma = (expand_to(c, x_vp) for c in path.alpha_sigma(t_path))
        scale = jnp.sqrt(alpha**2 + sigma**2)
        x_t = scale * x_vp
        x0, eps = x0_eps_from_output(path, prediction, denoise_fn(x_t, t_path, cond), x_t,
                                     t_path)
        return (alpha * eps - sigma * x0) / scale

    return schedule, view_fn
