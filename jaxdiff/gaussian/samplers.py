r"""Samplers for Gaussian diffusion, each one ``lax.scan`` over a public step function.

All samplers walk a strided subset :math:`\tau_1 < \dots < \tau_S` of the training steps
through the respaced schedule (:func:`~jaxdiff.gaussian.schedules.respace`); ``denoise_fn``
is always called with the original step indices :math:`\tau_i`. Step ``i`` goes from level
:math:`\tau_i` to level :math:`\tau_{i-1}` (the data, :math:`\bar\alpha = 1`, after
:math:`\tau_1`), with :math:`\alpha = \sqrt{\bar\alpha}`, :math:`\sigma = \sqrt{1 - \bar\alpha}`:

* ``ddpm`` (:func:`ddpm_step`): ancestral sampling :math:`x_{s} \sim p_\theta(x_s | x_t)`
  (Ho et al. 2020, Alg. 2) with variance :math:`\beta`, :math:`\tilde\beta` or learned
  (Nichol & Dhariwal 2021).
* ``ddim`` (:func:`ddim_step`): :math:`x_s = \alpha_s \hat x_0 + \sqrt{\sigma_s^2 -
  \eta^2\tilde\beta}\,\hat\epsilon + \eta\sqrt{\tilde\beta}\, z` (Song et al. 2021, eq. 12).
* ``dpm_solver++`` (:func:`dpm_solver_step`): DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) with
  :math:`h = \lambda_s - \lambda_t`, :math:`\lambda = \log(\alpha/\sigma)`:
  :math:`x_s = \frac{\sigma_s}{\sigma_t} x_t - \alpha_s (e^{-h} - 1) D`,
  :math:`D = (1 + \tfrac{1}{2r})\hat x_0^{(t)} - \tfrac{1}{2r}\hat x_0^{(prev)}`,
  :math:`r = h_{prev}/h`; first order on the first step and on the last (to the data).
* ``heun`` (:func:`heun_step`): Heun's method on the probability-flow ODE in EDM form
  (Karras et al. 2022, Alg. 1, deterministic): :math:`y = x/\alpha`, :math:`\mathrm d
  y/\mathrm d\sigma_e = (y - D(y))/\sigma_e` with :math:`\sigma_e = \sigma/\alpha`; Euler on
  the last step.

Every step function has the signature ``step(key, model, schedule, taus, i, carry, *,
prediction, variance, clip_x0)`` and returns the next carry:

* ``key``: PRNG key for the step's noise :math:`z` (unused by the deterministic steps);
* ``model(x_t, t) -> prediction``: ``denoise_fn`` with its conditioning bound
  (:func:`guided_denoiser`), ``t`` the ``int32 [B]`` original steps;
* ``schedule``: the respaced schedule (:func:`~jaxdiff.gaussian.respace`), indexed by ``i``;
  ``taus``: ``int [S]``, the original step index of each respaced level;
* ``i``: the respaced index of the current level :math:`t` (a scalar; ``i = 0`` steps to
  the data);
* the carry: the current sample :math:`x_t` ``[B, ...]``, except for DPM-Solver++, whose
  :class:`DPMSolverState` also remembers the previous step;
* ``prediction``: what ``model`` predicts (``eps``, ``x0`` or ``v``); ``variance``: ``beta``,
  ``beta_tilde`` or ``learned`` (the ancestral step's variance; for the others it only says
  that the output has twice the channels); ``clip_x0``: clip :math:`\hat x_0` to [-1, 1]
  and recompute :math:`\hat\epsilon` (:func:`~jaxdiff.gaussian.clip_x0_and_eps`), at every
  model call.

Everything runs in the dtype of ``x`` and of the schedule (float64 too, with
``jax_enable_x64`` and a float64 schedule).

Classifier-free guidance (Ho & Salimans 2022) combines the conditional and unconditional
outputs of one batched call, :math:`f = f_c + w (f_c - f_u)`. Inpainting replaces the known
region by the known values noised to the level just reached, after every step
(the replacement method; Song et al. 2021, App. I.2): exact when the known and unknown
coordinates are independent, an approximation otherwise (Lugmayr et al. 2022).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_choice, check_cond, check_sample_shape
from jaxdiff.gaussian.forward import (
    alpha_sigma,
    check_prediction,
    clip_x0_and_eps,
    expand_to,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.reverse import check_variance, p_mean_variance, split_model_output
from jaxdiff.gaussian.schedules import Schedule, respace, sampling_timesteps

SAMPLERS = ("ddpm", "ddim", "dpm_solver++", "heun")
DEFAULT_SPACINGS = {"ddpm": "uniform", "ddim": "uniform", "dpm_solver++": "log_snr",
                    "heun": "log_snr"}
"""Each sampler's spacing when none is given, chosen on the analytic mixture
(``experiments/sampler_matrix.py``): on a uniform grid ``heun`` misses the component means by
2.2 (cosine, 10 steps) and ``dpm_solver++`` by 0.41 (linear, 10 steps), against 0.29 and
0.04 on the log-SNR grid; DDIM is best on the uniform one."""


def guided_denoiser(denoise_fn, cond, *, guidance_scale: float | None, null_cond, channels: int):
    r"""``fn(x_t, t)`` for the sampler: ``denoise_fn`` with ``cond`` bound, guided if asked.

    With a guidance scale :math:`w` the conditional and the unconditional (``null_cond``)
    branches run as one batch of :math:`2B` and the first ``channels`` output channels become
    :math:`f_c + w (f_c - f_u)`; extra channels (a learned variance) come from the
    conditional branch.
    """
    if guidance_scale is None:
        return lambda x_t, t: denoise_fn(x_t, t, cond)
    if cond is None or null_cond is None:
        raise ValueError("guidance_scale needs both cond and null_cond (the unconditional input)")
    both = jax.tree_util.tree_map(lambda c, n: jnp.concatenate([c, n]), cond, null_cond)

    def fn(x_t, t):
        out = denoise_fn(jnp.concatenate([x_t, x_t]), jnp.concatenate([t, t]), both)
        out_c, out_u = jnp.split(out, 2)
        pred_c, pred_u = out_c[..., :channels], out_u[..., :channels]
        guided = pred_c + guidance_scale * (pred_c - pred_u)
        return jnp.concatenate([guided, out_c[..., channels:]], axis=-1)

    return fn


def _level(schedule: Schedule, i: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(alpha, sigma, log_snr)`` at respaced index ``i``."""
    alpha, sigma = alpha_sigma(schedule, i)
    return alpha, sigma, schedule.log_snrs[i]


def _prev_level(schedule: Schedule, i: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(alpha, sigma)`` at index ``i - 1``; the data level (1, 0) for i = 0."""
    alpha, sigma = alpha_sigma(schedule, jnp.maximum(i - 1, 0))
    first = i == 0
    return jnp.where(first, 1.0, alpha), jnp.where(first, 0.0, sigma)


def _check_options(prediction: str, variance: str) -> None:
    check_prediction(prediction)
    check_variance(variance)


def _model_out(model, taus: jax.Array, i: jax.Array, x: jax.Array) -> jax.Array:
    """The model's raw output for ``x`` at the original step ``taus[i]``."""
    return model(x, jnp.full((x.shape[0],), taus[i], jnp.int32))


def _denoised(model, schedule: Schedule, taus: jax.Array, i: jax.Array, x: jax.Array, *,
              prediction: str, variance: str, clip_x0: bool) -> tuple[jax.Array, jax.Array]:
    r""":math:`(\hat x_0, \hat\epsilon)` from the model at respaced index ``i``."""
    pred, _ = split_model_output(_model_out(model, taus, i, x), x, variance == "learned")
    alpha, sigma = alpha_sigma(schedule, i)   # scalars, or [B] for per-example levels
    batch = (x.shape[0],)
    x0, eps = x0_eps_from_prediction(prediction, pred, x, jnp.broadcast_to(alpha, batch),
                                     jnp.broadcast_to(sigma, batch))
    if clip_x0:
        x0, eps = clip_x0_and_eps(x0, x, alpha, sigma)
    return x0, eps


def ddpm_step(key: jax.Array, model, schedule: Schedule, taus: jax.Array, i: jax.Array,
              x: jax.Array, *, prediction: str = "eps", variance: str = "beta",
              clip_x0: bool = False) -> jax.Array:
    r"""One ancestral step :math:`x_s \sim p_\theta(x_s | x_t)` (Ho et al. 2020, Alg. 2).

    .. math::
        x_s = \tilde\mu(\hat x_0, x_t) + \mathbb 1[i > 0]\,\Sigma_\theta^{1/2} z, \quad
        \tilde\mu = \frac{\sqrt{\bar\alpha_s}\beta'_i}{1-\bar\alpha_t}\hat x_0
          + \frac{\sqrt{1 - \beta'_i}(1-\bar\alpha_s)}{1-\bar\alpha_t} x_t,

    with the respaced step's :math:`\beta'_i = 1 - \bar\alpha_t/\bar\alpha_s` and
    :math:`\Sigma_\theta` one of :math:`\beta'_i`, :math:`\tilde\beta_i` or the learned
    interpolation (Nichol & Dhariwal 2021, eq. 15): see
    :func:`~jaxdiff.gaussian.p_mean_variance`. The last step (``i = 0``) returns the mean.

    Args: the shared ones of the module docstring.

    Returns:
      :math:`x_s`, shaped like ``x``.
    """
    _check_options(prediction, variance)
    batch = x.shape[0]
    mean, log_var, _, _ = p_mean_variance(schedule, _model_out(model, taus, i, x), x,
                                          jnp.full((batch,), i), clip_x0=clip_x0,
                                          prediction=prediction, variance=variance)
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + (i > 0) * jnp.exp(0.5 * log_var) * noise


def ddim_step(key: jax.Array, model, schedule: Schedule, taus: jax.Array, i: jax.Array,
              x: jax.Array, *, prediction: str = "eps", variance: str = "beta",
              clip_x0: bool = False, eta: float = 0.0) -> jax.Array:
    r"""One DDIM step (Song et al. 2021, eq. 12).

    .. math::
        x_s = \alpha_s \hat x_0 + \sqrt{\max(\sigma_s^2 - \eta^2\tilde\beta_i, 0)}\,\hat\epsilon
              + \eta\sqrt{\tilde\beta_i}\, z,

    deterministic for :math:`\eta = 0`, DDPM with :math:`\tilde\beta` for :math:`\eta = 1`;
    :math:`\tilde\beta_i` is the respaced step's posterior variance, :math:`(\alpha_s,
    \sigma_s) = (1, 0)` after ``i = 0``.

    ``schedule``'s fields may also be ``[S, B]`` with ``taus`` ``[S, B]`` to match: one
    chain of levels per example (as :func:`jaxdiff.metrics.ddim_reconstruct` does).

    Args: the shared ones of the module docstring, and
      eta: the stochasticity :math:`\eta`.

    Returns:
      :math:`x_s`, shaped like ``x``.
    """
    _check_options(prediction, variance)
    x0, eps = _denoised(model, schedule, taus, i, x, prediction=prediction, variance=variance,
                        clip_x0=clip_x0)
    alpha_s, sigma_s = _prev_level(schedule, i)
    std = eta * jnp.sqrt(schedule.posterior_variance[i])
    noise = jax.random.normal(key, x.shape, x.dtype)
    direction = jnp.sqrt(jnp.maximum(sigma_s**2 - std**2, 0.0))
    return (expand_to(alpha_s, x) * x0 + expand_to(direction, x) * eps
            + expand_to(std, x) * noise)


class DPMSolverState(NamedTuple):
    r"""The carry of :func:`dpm_solver_step`.

    Attributes:
      x: the current sample :math:`x_t`.
      x0_prev: the previous step's :math:`\hat x_0` (unused on the first step).
      h_prev: the previous step's :math:`h` (scalar; unused on the first step).
    """

    x: jax.Array
    x0_prev: jax.Array
    h_prev: jax.Array


def dpm_solver_step(key: jax.Array, model, schedule: Schedule, taus: jax.Array, i: jax.Array,
                    state: DPMSolverState, *, prediction: str = "eps", variance: str = "beta",
                    clip_x0: bool = False) -> DPMSolverState:
    r"""One step of DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), multistep in :math:`\hat x_0`.

    With :math:`\lambda = \log(\alpha/\sigma)` (half the log-SNR), :math:`h = \lambda_s -
    \lambda_t` and :math:`r = h_{prev}/h`:

    .. math::
        x_s = \frac{\sigma_s}{\sigma_t} x_t - \alpha_s (e^{-h} - 1) D, \quad
        D = \Big(1 + \frac{1}{2r}\Big)\hat x_0^{(t)} - \frac{1}{2r}\hat x_0^{(prev)};

    first order (:math:`D = \hat x_0^{(t)}`) on the first step (``i = S - 1``), and the last
    step (``i = 0``, to the data) returns :math:`\hat x_0^{(t)}`.

    Args: the shared ones of the module docstring.

    Returns:
      ``DPMSolverState(x_s, x0_hat, h)``. Start from ``DPMSolverState(x_T, zeros_like(x_T),
      1)``.
    """
    del key  # deterministic
    _check_options(prediction, variance)
    x, x0_prev, h_prev = state
    x0, _ = _denoised(model, schedule, taus, i, x, prediction=prediction, variance=variance,
                      clip_x0=clip_x0)
    _, sigma_t, lam_t = _level(schedule, i)
    alpha_s, sigma_s, lam_s = _level(schedule, jnp.maximum(i - 1, 0))
    h = 0.5 * (lam_s - lam_t)
    r = h_prev / h
    second = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
    d = jnp.where(i == schedule.num_steps - 1, x0, second)
    x_next = sigma_s / sigma_t * x - alpha_s * jnp.expm1(-h) * d
    return DPMSolverState(jnp.where(i == 0, x0, x_next), x0, h)


def heun_step(key: jax.Array, model, schedule: Schedule, taus: jax.Array, i: jax.Array,
              x: jax.Array, *, prediction: str = "eps", variance: str = "beta",
              clip_x0: bool = False) -> jax.Array:
    r"""One step of Heun's method on the probability-flow ODE in EDM form (Karras et al.
    2022, Alg. 1, deterministic).

    With :math:`y = x/\alpha`, :math:`\sigma_e = \sigma/\alpha = e^{-\lambda/2}` and the
    slope :math:`d(y, \sigma_e) = (y - D(y))/\sigma_e`, :math:`D` the model's :math:`\hat x_0`:

    .. math::
        \bar y = y_t + (\sigma_{e,s} - \sigma_{e,t})\, d(y_t, \sigma_{e,t}), \quad
        y_s = y_t + (\sigma_{e,s} - \sigma_{e,t})\,
              \tfrac12\big(d(y_t, \sigma_{e,t}) + d(\bar y, \sigma_{e,s})\big),

    :math:`x_s = \alpha_s y_s`: two model calls; the last step (``i = 0``, Euler to
    :math:`\sigma_e = 0`) returns :math:`\hat x_0` with one.

    Args: the shared ones of the module docstring.

    Returns:
      :math:`x_s`, shaped like ``x``.
    """
    del key  # deterministic
    _check_options(prediction, variance)
    options = dict(prediction=prediction, variance=variance, clip_x0=clip_x0)
    alpha_t, _, lam_t = _level(schedule, i)
    sigma_e = jnp.exp(-0.5 * lam_t)
    y = x / alpha_t
    x0, _ = _denoised(model, schedule, taus, i, x, **options)
    slope = (y - x0) / sigma_e

    def correct(_):
        alpha_s, _, lam_s = _level(schedule, i - 1)
        sigma_e_next = jnp.exp(-0.5 * lam_s)
        y_euler = y + (sigma_e_next - sigma_e) * slope
        x0_next, _ = _denoised(model, schedule, taus, i - 1, alpha_s * y_euler, **options)
        slope_next = (y_euler - x0_next) / sigma_e_next
        return alpha_s * (y + (sigma_e_next - sigma_e) * 0.5 * (slope + slope_next))

    return jax.lax.cond(i > 0, correct, lambda _: x0, None)


_STEPS = {"ddpm": ddpm_step, "ddim": ddim_step, "dpm_solver++": dpm_solver_step,
          "heun": heun_step}


def sample(key: jax.Array, denoise_fn, schedule: Schedule, shape, *, sampler: str = "ddpm",
           num_steps: int | None = None, spacing: str | None = None, prediction: str = "eps",
           variance: str = "beta",
           eta: float = 0.0, clip_x0: bool = False, cond=None,
           guidance_scale: float | None = None, null_cond=None,
           inpaint_mask: jax.Array | None = None, inpaint_values: jax.Array | None = None,
           ) -> jax.Array:
    r"""Draws a batch from the reverse process: one ``lax.scan``, ``jit``-able end to end.

    Runs in the schedule's dtype (``schedule.log_snrs.dtype``; float64 with
    ``jax_enable_x64`` and a float64 schedule).

    Args:
      key: PRNG key, split into ``(key_init, key_loop)``: :math:`x_T` is drawn with
        ``key_init``, step ``i`` uses ``fold_in(key_loop, i)`` (and inpainting ``fold_in`` of
        that by 1).
      denoise_fn: ``denoise_fn(x_t, t, cond) -> prediction``.
      schedule: the training schedule (``T`` steps).
      shape: output shape ``[B, ...]`` (static).
      sampler: ``ddpm``, ``ddim``, ``dpm_solver++`` or ``heun``.
      num_steps: number of steps ``S`` (static); default ``T`` for ``ddpm``, 50 otherwise.
      spacing: how the ``S`` steps are chosen: ``uniform``, ``log_snr`` or ``karras``;
        default :data:`DEFAULT_SPACINGS` (log-SNR for ``dpm_solver++`` and ``heun``)
        (see :func:`~jaxdiff.gaussian.schedules.sampling_timesteps`).
      prediction: what ``denoise_fn`` predicts: ``eps``, ``x0`` or ``v``.
      variance: ``beta``, ``beta_tilde`` or ``learned``; the model's variance for ``ddpm``
        (``learned`` also tells every sampler that the output has twice the channels;
        ``beta_tilde`` is an error for the samplers other than ``ddpm``, which ignore it).
      eta: DDIM's stochasticity (0: deterministic, 1: DDPM with :math:`\tilde\beta`);
        only ``ddim`` has it (a non-zero ``eta`` for another sampler is an error).
      clip_x0: clip :math:`\hat x_0` to [-1, 1] at every step (every sampler; for heun
        both denoiser calls of a step).
      cond: conditioning for ``denoise_fn`` (batch first).
      guidance_scale: classifier-free guidance weight :math:`w`; needs ``null_cond``.
      null_cond: the unconditional input (e.g. the null class), shaped like ``cond``.
      inpaint_mask: 1 where ``inpaint_values`` are known, broadcastable to ``shape``.
      inpaint_values: the known data, shape ``shape``.

    Returns:
      Samples of shape ``shape``.
    """
    check_choice("sampler", sampler, SAMPLERS)
    _check_options(prediction, variance)
    if eta != 0 and sampler != "ddim":
        raise ValueError(f"eta is DDIM's stochasticity; sampler {sampler!r} has none "
                         f"(eta must be 0), got eta={eta}")
    if variance == "beta_tilde" and sampler != "ddpm":
        raise ValueError(f"variance='beta_tilde' sets the ancestral (ddpm) variance; sampler "
                         f"{sampler!r} does not use it (variance 'beta', or 'learned' for a "
                         "model with a variance output)")
    shape = check_sample_shape(shape)
    batch, channels = shape[0], shape[-1]
    check_cond(cond, batch)
    if num_steps is None:
        num_steps = schedule.num_steps if sampler == "ddpm" else 50
    taus = sampling_timesteps(schedule, num_steps, spacing=spacing or DEFAULT_SPACINGS[sampler])
    rs = respace(schedule, taus)
    taus = jnp.asarray(taus)
    dtype = rs.log_snrs.dtype
    model = guided_denoiser(denoise_fn, cond, guidance_scale=guidance_scale,
                            null_cond=null_cond, channels=channels)
    paste = inpainter(inpaint_mask, inpaint_values, shape, dtype)
    step = _STEPS[sampler]
    options = dict(prediction=prediction, variance=variance, clip_x0=clip_x0)
    if sampler == "ddim":
        options["eta"] = eta
    multistep = sampler == "dpm_solver++"

    key_init, key_loop = jax.random.split(key)
    x = jax.random.normal(key_init, shape, dtype)
    carry = DPMSolverState(x, jnp.zeros_like(x), jnp.ones((), dtype)) if multistep else x

    def body(carry, i):
        key_i = jax.random.fold_in(key_loop, i)
        carry = step(key_i, model, rs, taus, i, carry, **options)
        alpha_s, sigma_s = _prev_level(rs, i)
        x = paste(carry.x if multistep else carry, alpha_s, sigma_s, jax.random.fold_in(key_i, 1))
        return (carry._replace(x=x) if multistep else x), None

    carry, _ = jax.lax.scan(body, carry, jnp.arange(num_steps - 1, -1, -1))
    return carry.x if multistep else carry


def inpainter(mask, values, shape, dtype):
    """``paste(x, alpha, sigma, key)``: the known region re-noised to the level (alpha, sigma)."""
    if mask is None and values is None:
        return lambda x, alpha, sigma, key: x
    if mask is None or values is None:
        raise ValueError("inpainting needs both inpaint_mask and inpaint_values")
    if values.shape != shape:
        raise ValueError(f"inpaint_values must have shape {shape}, got {values.shape}")
    try:
        mask = jnp.broadcast_to(jnp.asarray(mask, dtype), shape)
    except ValueError as err:
        raise ValueError(f"inpaint_mask must broadcast to {shape}, "
                         f"got {jnp.shape(mask)}") from err
    values = jnp.asarray(values, dtype)

    def paste(x, alpha, sigma, key):
        known = alpha * values + sigma * jax.random.normal(key, shape, x.dtype)
        return mask * known + (1.0 - mask) * x

    return paste
