r"""Samplers for Gaussian diffusion, each one ``lax.scan`` over its steps.

All samplers walk a strided subset :math:`\tau_1 < \dots < \tau_S` of the training steps
through the respaced schedule (:func:`~jaxdiff.gaussian.schedules.respace`); ``denoise_fn``
is always called with the original step indices :math:`\tau_i`. Step ``i`` goes from level
:math:`\tau_i` to level :math:`\tau_{i-1}` (the data, :math:`\bar\alpha = 1`, after
:math:`\tau_1`), with :math:`\alpha = \sqrt{\bar\alpha}`, :math:`\sigma = \sqrt{1 - \bar\alpha}`:

* ``ddpm``: ancestral sampling :math:`x_{s} \sim p_\theta(x_s | x_t)` (Ho et al. 2020, Alg. 2)
  with variance :math:`\beta`, :math:`\tilde\beta` or learned (Nichol & Dhariwal 2021).
* ``ddim``: :math:`x_s = \alpha_s \hat x_0 + \sqrt{\sigma_s^2 - \eta^2\tilde\beta}\,\hat\epsilon
  + \eta\sqrt{\tilde\beta}\, z` (Song et al. 2021, eq. 12).
* ``dpm_solver++``: DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) with
  :math:`h = \lambda_s - \lambda_t`, :math:`\lambda = \log(\alpha/\sigma)`:
  :math:`x_s = \frac{\sigma_s}{\sigma_t} x_t - \alpha_s (e^{-h} - 1) D`,
  :math:`D = (1 + \tfrac{1}{2r})\hat x_0^{(t)} - \tfrac{1}{2r}\hat x_0^{(prev)}`,
  :math:`r = h_{prev}/h`; first order on the first step and on the last (to the data).
* ``heun``: Heun's method on the probability-flow ODE in EDM form (Karras et al. 2022,
  Alg. 1, deterministic): :math:`y = x/\alpha`, :math:`\mathrm d y/\mathrm d\sigma_e =
  (y - D(y))/\sigma_e` with :math:`\sigma_e = \sigma/\alpha`; Euler on the last step.

Classifier-free guidance (Ho & Salimans 2022) combines the conditional and unconditional
outputs of one batched call, :math:`f = f_c + w (f_c - f_u)`. Inpainting replaces the known
region by the known values noised to the level just reached, after every step
(the replacement method; Song et al. 2021, App. I.2): exact when the known and unknown
coordinates are independent, an approximation otherwise (Lugmayr et al. 2022).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import check_choice
from jaxdiff.gaussian.forward import check_prediction, x0_eps_from_prediction
from jaxdiff.gaussian.reverse import check_variance, p_mean_variance, split_model_output
from jaxdiff.gaussian.schedules import Schedule, respace, sampling_timesteps

SAMPLERS = ("ddpm", "ddim", "dpm_solver++", "heun")


def _check_shape(shape) -> tuple[int, ...]:
    if (not isinstance(shape, (tuple, list)) or len(shape) < 2
            or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape)):
        raise ValueError(f"shape must be a tuple of >= 2 positive ints [B, ...], got {shape!r}")
    return tuple(int(d) for d in shape)


def _check_cond(cond, batch: int) -> None:
    for leaf in jax.tree_util.tree_leaves(cond):
        if getattr(leaf, "shape", ())[:1] != (batch,):
            raise ValueError(f"cond leaves must have batch size {batch} first, "
                             f"got shape {getattr(leaf, 'shape', None)}")


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
    """``(alpha, sigma, log_snr)`` at respaced index ``i`` (scalar)."""
    lam = schedule.log_snrs[i]
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam)), lam


def _prev_level(schedule: Schedule, i: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(alpha, sigma, log_snr)`` at index ``i - 1``; the data level (1, 0, +inf) for i = 0."""
    alpha, sigma, lam = _level(schedule, jnp.maximum(i - 1, 0))
    first = i == 0
    return (jnp.where(first, 1.0, alpha), jnp.where(first, 0.0, sigma),
            jnp.where(first, jnp.inf, lam))


def sample(key: jax.Array, denoise_fn, schedule: Schedule, shape, *, sampler: str = "ddpm",
           num_steps: int | None = None, spacing: str = "uniform", prediction: str = "eps",
           variance: str = "beta",
           eta: float = 0.0, clip_x0: bool = False, cond=None,
           guidance_scale: float | None = None, null_cond=None,
           inpaint_mask: jax.Array | None = None, inpaint_values: jax.Array | None = None,
           ) -> jax.Array:
    r"""Draws a batch from the reverse process: one ``lax.scan``, ``jit``-able end to end.

    Args:
      key: PRNG key; step ``i`` uses ``fold_in(key, i)``.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> prediction``.
      schedule: the training schedule (``T`` steps).
      shape: output shape ``[B, ...]`` (static).
      sampler: ``ddpm``, ``ddim``, ``dpm_solver++`` or ``heun``.
      num_steps: number of steps ``S`` (static); default ``T`` for ``ddpm``, 50 otherwise.
      spacing: how the ``S`` steps are chosen: ``uniform``, ``log_snr`` or ``karras``
        (see :func:`~jaxdiff.gaussian.schedules.sampling_timesteps`).
      prediction: what ``denoise_fn`` predicts: ``eps``, ``x0`` or ``v``.
      variance: ``beta``, ``beta_tilde`` or ``learned``; the model's variance for ``ddpm``
        (``learned`` also tells every sampler that the output has twice the channels).
      eta: DDIM's stochasticity (0: deterministic, 1: DDPM with :math:`\tilde\beta`).
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
    check_prediction(prediction)
    check_variance(variance)
    shape = _check_shape(shape)
    batch, channels = shape[0], shape[-1]
    _check_cond(cond, batch)
    if num_steps is None:
        num_steps = schedule.num_steps if sampler == "ddpm" else 50
    taus = sampling_timesteps(schedule, num_steps, spacing=spacing)
    rs = respace(schedule, taus)
    taus = jnp.asarray(taus)
    learned = variance == "learned"
    model = guided_denoiser(denoise_fn, cond, guidance_scale=guidance_scale,
                            null_cond=null_cond, channels=channels)
    paste = _inpainter(inpaint_mask, inpaint_values, shape)

    def denoised(x, i, *, clip):
        """(x0_hat, eps_hat) from the model at respaced index ``i``."""
        out = model(x, jnp.full((batch,), taus[i], jnp.int32))
        pred, _ = split_model_output(out, x, learned)
        alpha, sigma, _ = _level(rs, i)
        x0, eps = x0_eps_from_prediction(prediction, pred, x, alpha[None], sigma[None])
        if clip:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = (x - alpha * x0) / sigma
        return x0, eps

    def ddpm_step(carry, i, key_i):
        (x,) = carry
        out = model(x, jnp.full((batch,), taus[i], jnp.int32))
        mean, log_var, _, _ = p_mean_variance(rs, out, x, jnp.full((batch,), i), clip_x0=clip_x0,
                                              prediction=prediction, variance=variance)
        noise = jax.random.normal(key_i, shape, x.dtype)
        return (mean + (i > 0) * jnp.exp(0.5 * log_var) * noise,)

    def ddim_step(carry, i, key_i):
        (x,) = carry
        x0, eps = denoised(x, i, clip=clip_x0)
        alpha_s, sigma_s, _ = _prev_level(rs, i)
        std = eta * jnp.sqrt(rs.posterior_variance[i])
        noise = jax.random.normal(key_i, shape, x.dtype)
        direction = jnp.sqrt(jnp.maximum(sigma_s**2 - std**2, 0.0))
        return (alpha_s * x0 + direction * eps + std * noise,)

    def dpm_solver_step(carry, i, key_i):
        del key_i
        x, x0_prev, h_prev = carry
        x0, _ = denoised(x, i, clip=clip_x0)
        _, sigma_t, lam_t = _level(rs, i)
        alpha_s, sigma_s, lam_s = _level(rs, jnp.maximum(i - 1, 0))
        h = 0.5 * (lam_s - lam_t)
        r = h_prev / h
        second = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        d = jnp.where(i == num_steps - 1, x0, second)
        x_next = sigma_s / sigma_t * x - alpha_s * jnp.expm1(-h) * d
        return jnp.where(i == 0, x0, x_next), x0, h

    def heun_step(carry, i, key_i):
        del key_i
        (x,) = carry
        alpha_t, _, lam_t = _level(rs, i)
        sigma_e = jnp.exp(-0.5 * lam_t)
        y = x / alpha_t
        x0, _ = denoised(x, i, clip=clip_x0)
        slope = (y - x0) / sigma_e

        def correct(_):
            alpha_s, _, lam_s = _level(rs, i - 1)
            sigma_e_next = jnp.exp(-0.5 * lam_s)
            y_euler = y + (sigma_e_next - sigma_e) * slope
            x0_next, _ = denoised(alpha_s * y_euler, i - 1, clip=clip_x0)
            slope_next = (y_euler - x0_next) / sigma_e_next
            return alpha_s * (y + (sigma_e_next - sigma_e) * 0.5 * (slope + slope_next))

        return (jax.lax.cond(i > 0, correct, lambda _: x0, None),)

    step, carry = {
        "ddpm": (ddpm_step, None),
        "ddim": (ddim_step, None),
        "dpm_solver++": (dpm_solver_step, "dpm"),
        "heun": (heun_step, None),
    }[sampler]
    key_init, key_loop = jax.random.split(key)
    x_init = jax.random.normal(key_init, shape, jnp.float32)
    carry = (x_init, jnp.zeros(shape, jnp.float32), jnp.ones((), jnp.float32)) if carry else (
        x_init,)

    def body(carry, i):
        key_i = jax.random.fold_in(key_loop, i)
        new = step(carry, i, key_i)
        alpha_s, sigma_s, _ = _prev_level(rs, i)
        x = paste(new[0], alpha_s, sigma_s, jax.random.fold_in(key_i, 1))
        return (x,) + tuple(new[1:]), None

    carry, _ = jax.lax.scan(body, carry, jnp.arange(num_steps - 1, -1, -1))
    return carry[0]


def _inpainter(mask, values, shape):
    """``paste(x, alpha, sigma, key)``: the known region re-noised to the level (alpha, sigma)."""
    if mask is None and values is None:
        return lambda x, alpha, sigma, key: x
    if mask is None or values is None:
        raise ValueError("inpainting needs both inpaint_mask and inpaint_values")
    if values.shape != shape:
        raise ValueError(f"inpaint_values must have shape {shape}, got {values.shape}")
    try:
        mask = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), shape)
    except ValueError as err:
        raise ValueError(f"inpaint_mask must broadcast to {shape}, "
                         f"got {jnp.shape(mask)}") from err

    def paste(x, alpha, sigma, key):
        known = alpha * values + sigma * jax.random.normal(key, shape, x.dtype)
        return mask * known + (1.0 - mask) * x

    return paste
