r"""Samplers on a continuous-time :class:`~jaxdiff.gaussian.paths.Path`: ODE solvers in the
path's own time, with EDM's stochastic churn; one ``lax.scan``.

The probability-flow ODE of any Gaussian path is

.. math:: \frac{\mathrm dx}{\mathrm dt} = \dot\alpha(t)\,\hat x_0(x, t) + \dot\sigma(t)\,
          \hat\epsilon(x, t),

the flow-matching velocity (Lipman et al. 2023) when the network predicts it, and EDM's
:math:`\mathrm dx/\mathrm d\sigma = (x - D(x; \sigma))/\sigma` on the ``ve`` path
(Karras et al. 2022, eq. 4 with :math:`s = 1`). From the prior
:math:`x \sim \mathcal N(0, \sigma(t_0)^2 I)` at the grid's first level :math:`t_0` it takes
one solver step between consecutive levels :math:`t_0 > \dots > t_{N-1}` of
:func:`time_grid`, with :math:`h = t_{i+1} - t_i`:

* ``euler``: :math:`x \leftarrow x + h\,u(x, t_i)` (one call);
* ``midpoint``: :math:`x \leftarrow x + h\,u(x + \tfrac h2 u(x, t_i), t_i + \tfrac h2)`
  (two calls);
* ``heun``: :math:`\bar x = x + h\,u(x, t_i)`, :math:`x \leftarrow x + \tfrac h2(u(x, t_i) +
  u(\bar x, t_{i+1}))` (two calls; Karras et al. 2022, Alg. 1);

then the last step, from :math:`t_{N-1}` to the clean end (:math:`\sigma = 0`), returns
:math:`\hat x_0(x, t_{N-1})`: the Euler step to :math:`\sigma = 0` on every path (EDM's last
step). ``N`` steps cost :math:`N` calls (Euler) or :math:`2N - 1` (midpoint, Heun): EDM's
18 steps are its 35 NFE.

**Churn** (Karras et al. 2022, Alg. 2): before the step from :math:`t_i`, where
:math:`S_\text{tmin} \le \sigma_e(t_i) \le S_\text{tmax}` (:math:`\sigma_e = \sigma/\alpha`),
the noise level is raised to :math:`\hat\sigma_e = (1 + \gamma)\sigma_e`,
:math:`\gamma = \min(S_\text{churn}/N, \sqrt2 - 1)`, by
:math:`\hat x = \frac{\hat\alpha}{\alpha}x + \sqrt{\hat\sigma^2 - (\hat\alpha\sigma/\alpha)^2}
\,S_\text{noise}\,z` (for ``ve``: :math:`x + \sqrt{\hat\sigma^2 - \sigma^2}S_\text{noise}z`),
and the step starts from :math:`\hat t` (clamped to ``t_max``: Alg. 2 lets
:math:`\hat\sigma` exceed :math:`\sigma_\max`, which matters only if ``s_tmax`` reaches
the first level; never where :math:`\alpha = 0`). ``s_churn = 0`` is the deterministic
sampler.

Classifier-free guidance and inpainting (the known region re-noised to each level reached)
work as in :func:`jaxdiff.gaussian.sample`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import check_choice, check_cond, check_int, check_sample_shape
from jaxdiff.gaussian.forward import clip_x0_and_eps
from jaxdiff.gaussian.paths import (
    Path,
    check_continuous_prediction,
    coefficients,
    x0_eps_from_output,
)
from jaxdiff.gaussian.samplers import guided_denoiser, inpainter

SOLVERS = ("euler", "midpoint", "heun")
DEFAULT_STEPS = {"euler": 50, "midpoint": 25, "heun": 18}
"""Each solver's step count when none is given: 50, 49 and 35 network calls (EDM's 18 Heun
steps); with them every solver reproduces the analytic mixture on every path
(``experiments/sampler_matrix.py``)."""
GRID_SPACINGS = ("uniform", "karras", "log_snr")
# EDM's sigma range (Karras et al. 2022, Sec. 5): the karras / log_snr grids of a path whose
# sigma_e = sigma / alpha leaves [0.002, 80] are clamped to it.
EDM_SIGMA_MIN, EDM_SIGMA_MAX = 0.002, 80.0
_NOISIEST = -2.0 * np.log(EDM_SIGMA_MAX)    # the clamp in log-SNR
_CLEANEST = -2.0 * np.log(EDM_SIGMA_MIN)


def time_grid(path: Path, num_steps: int, *, spacing: str = "uniform", shift: float = 1.0,
              rho: float = 7.0) -> np.ndarray:
    r"""The ``num_steps`` noisy levels :math:`t_0 > \dots > t_{N-1}` of a sampler, float64.

    ``uniform``: evenly spaced in ``t`` from ``t_max`` to the clean end (``t_min``; the clean
    end itself is dropped when :math:`\sigma(t_\min) = 0`, as on ``rectified_flow``), with
    SD3's ``shift`` (Esser et al. 2024, eq. 23) applied to the position
    :math:`u = (t - t_\min)/(t_\max - t_\min)` in [0, 1].
    ``karras``: evenly spaced in :math:`\sigma_e^{1/\rho}` (Karras et al. 2022, eq. 5);
    ``log_snr``: evenly in :math:`\lambda`; both between the path's ends clamped to EDM's
    :math:`\sigma_e \in [0.002, 80]`.
    """
    check_choice("spacing", spacing, GRID_SPACINGS)
    num_steps = check_int("num_steps", num_steps)
    with jax.ensure_compile_time_eval():   # a static grid, also when called under jit
        return _time_grid(path, num_steps, spacing, shift, rho)


def _time_grid(path, num_steps, spacing, shift, rho):
    if shift != 1.0 and spacing != "uniform":
        raise ValueError(f"shift applies to the uniform grid; got spacing={spacing!r}")
    lo, hi = np.float64(path.t_min), np.float64(path.t_max)
    clean_end = path.alpha_sigma_value(lo)[1] == 0.0
    if spacing == "uniform":
        u = np.linspace(1.0, 0.0, num_steps + 1)[:-1] if clean_end \
            else np.linspace(1.0, 0.0, num_steps)
        if shift != 1.0:
            u = shift * u / (1.0 + (shift - 1.0) * u)
        return lo + (hi - lo) * u
    with np.errstate(divide="ignore"):
        lam_noisy = max(float(path.log_snr(hi)), _NOISIEST)
        lam_clean = min(float(path.log_snr(lo)), _CLEANEST)
    if num_steps == 1:
        lams = np.array([lam_noisy])
    elif spacing == "log_snr":
        lams = np.linspace(lam_noisy, lam_clean, num_steps)
    else:
        s_max, s_min = np.exp(-0.5 * lam_noisy), np.exp(-0.5 * lam_clean)
        sigmas = np.linspace(s_max ** (1 / rho), s_min ** (1 / rho), num_steps) ** rho
        lams = -2.0 * np.log(sigmas)
    # in JAX's default precision (float32 unless jax_enable_x64), as the sampler runs
    return np.clip(np.asarray(path.time_at(jnp.asarray(lams)), np.float64), lo, hi)


def _check_times_grid(times, path: Path, **defaults) -> np.ndarray:
    """``times`` as a float64 grid, or a ``ValueError`` naming what is wrong with it."""
    changed = [k for k, v in defaults.items() if v != {"num_steps": None, "spacing": None,
                                                        "shift": 1.0}[k]]
    if changed:
        raise ValueError(f"times is an explicit grid; {changed} must be left at their "
                         f"defaults")
    grid = np.asarray(times, np.float64)
    if grid.ndim != 1 or grid.size < 1 or np.any(np.diff(grid) >= 0):
        raise ValueError(f"times must be a strictly decreasing 1-D array, got {grid!r}")
    if grid[0] > path.t_max or grid[-1] < path.t_min:
        raise ValueError(f"times must lie in the {path.name} path's interval "
                         f"[{path.t_min}, {path.t_max}], got [{grid[-1]}, {grid[0]}]")
    return grid


def _velocity_and_x0(model, path: Path, x: jax.Array, t: jax.Array, *, prediction: str,
                     clip_x0: bool):
    """``(dx/dt, x0_hat)`` at the scalar time ``t``."""
    tb = jnp.full((x.shape[0],), t, x.dtype)
    x0, eps = x0_eps_from_output(path, prediction, model(x, tb), x, tb)
    alpha, sigma, d_alpha, d_sigma = coefficients(path, t)
    if clip_x0:
        x0, eps = clip_x0_and_eps(x0, x, alpha, sigma)
    return d_alpha * x0 + d_sigma * eps, x0


def ode_sample(key: jax.Array, denoise_fn, path: Path, shape, *, solver: str = "heun",
               num_steps: int | None = None, spacing: str | None = None, shift: float = 1.0,
               prediction: str = "velocity", s_churn: float = 0.0, s_tmin: float = 0.0,
               s_tmax: float = float("inf"), s_noise: float = 1.0, clip_x0: bool = False,
               cond=None, guidance_scale: float | None = None, null_cond=None,
               inpaint_mask: jax.Array | None = None, inpaint_values: jax.Array | None = None,
               times=None, x_init: jax.Array | None = None, return_trajectory: bool = False,
               dtype=jnp.float32):
    r"""Draws a batch by solving the probability-flow ODE of ``path`` (module docstring).

    Args:
      key: PRNG key, split into ``(key_init, key_loop)``: the prior draw uses ``key_init``,
        step ``i`` ``fold_in(key_loop, i)`` (churn; inpainting ``fold_in`` of that by 1).
      denoise_fn: ``denoise_fn(x_t, t, cond) -> output`` with ``t`` the path's times.
      path: the Gaussian path.
      shape: output shape ``[B, ...]`` (static).
      solver: ``euler``, ``midpoint`` or ``heun``.
      num_steps: steps ``N`` including the last one to the clean end; default
        :data:`DEFAULT_STEPS` (50 Euler, 25 midpoint, 18 Heun).
      spacing: the grid (:func:`time_grid`); default the path's ``sampling_spacing``.
      shift: SD3's shift of the uniform grid.
      prediction: what ``denoise_fn`` outputs: ``eps``, ``x0``, ``v`` or ``velocity``.
      s_churn, s_tmin, s_tmax, s_noise: EDM's churn (Alg. 2); 0 churn is deterministic.
      clip_x0: clip :math:`\hat x_0` to [-1, 1] at every call.
      cond, guidance_scale, null_cond: conditioning and classifier-free guidance.
      inpaint_mask, inpaint_values: the known region and its values.
      times: an explicit grid of noisy levels instead of :func:`time_grid`'s (a strictly
        decreasing 1-D array inside the path's interval; ``num_steps``, ``spacing`` and
        ``shift`` must then be left at their defaults).
      x_init: start from this ``x`` at the grid's first level instead of a prior draw
        (shape ``shape``): reconstruction from a noised image, SDEdit-style editing.
      return_trajectory: also return the states the solver passed through.
      dtype: the computation's dtype (float64 needs ``jax_enable_x64``).

    Returns:
      Samples of shape ``shape``; with ``return_trajectory``, ``(samples, states, times)``:
      ``states [K, *shape]`` at the path times ``times [K]`` (float64 NumPy, decreasing),
      the state at every grid level and, on a path whose clean end has
      :math:`\sigma = 0` (rectified flow), the samples at that end; on the others the last
      step to :math:`\sigma = 0` has no time on the path and is not a state
      (:func:`jaxdiff.metrics.straightness` takes them).
    """
    check_choice("solver", solver, SOLVERS)
    check_continuous_prediction(prediction)
    if s_churn < 0 or s_noise <= 0 or s_tmin < 0 or s_tmax < s_tmin:
        raise ValueError(f"need s_churn >= 0, s_noise > 0 and 0 <= s_tmin <= s_tmax, got "
                         f"s_churn={s_churn}, s_noise={s_noise}, s_tmin={s_tmin}, "
                         f"s_tmax={s_tmax}")
    shape = check_sample_shape(shape)
    check_cond(cond, shape[0])
    if prediction == "eps" and path.alpha_sigma_value(path.t_max)[0] == 0.0:
        raise ValueError(f"prediction='eps' cannot be sampled on the {path.name!r} path: at its "
                         f"noisy end alpha = 0, x_t is the noise itself and x0 is not "
                         f"identified from eps (use velocity, v or x0)")
    if times is None:
        num_steps = DEFAULT_STEPS[solver] if num_steps is None else num_steps
        grid = time_grid(path, num_steps, spacing=spacing or path.sampling_spacing,
                         shift=shift)
    else:
        grid = _check_times_grid(times, path, num_steps=num_steps, spacing=spacing,
                                 shift=shift)
        num_steps = len(grid)
    gamma = min(s_churn / num_steps, np.sqrt(2.0) - 1.0)
    model = guided_denoiser(denoise_fn, cond, guidance_scale=guidance_scale,
                            null_cond=null_cond, channels=shape[-1])
    paste = inpainter(inpaint_mask, inpaint_values, shape, dtype)
    field = lambda x, t: _velocity_and_x0(model, path, x, t, prediction=prediction,  # noqa: E731
                                          clip_x0=clip_x0)

    def churn(x, t, key):
        if gamma == 0:
            return x, t
        alpha, sigma, _, _ = coefficients(path, t)
        safe_alpha = jnp.where(alpha > 0, alpha, 1.0)
        sigma_e = sigma / safe_alpha
        # not where alpha = 0 (rectified flow's t = 1: already pure noise)
        raise_it = (alpha > 0) & (sigma_e >= s_tmin) & (sigma_e <= s_tmax)
        t_hat = jnp.minimum(path.time_at(-2.0 * jnp.log((1.0 + gamma) * sigma_e)), path.t_max)
        alpha_hat, sigma_hat, _, _ = coefficients(path, t_hat)
        scale = alpha_hat / safe_alpha
        extra = jnp.sqrt(jnp.maximum(sigma_hat**2 - (scale * sigma) ** 2, 0.0))
        x_hat = scale * x + extra * s_noise * jax.random.normal(key, x.shape, x.dtype)
        return jnp.where(raise_it, x_hat, x), jnp.where(raise_it, t_hat, t)

    def step(x, t, t_next):
        h = t_next - t
        u, _ = field(x, t)
        if solver == "euler":
            return x + h * u
        if solver == "midpoint":
            return x + h * field(x + 0.5 * h * u, t + 0.5 * h)[0]
        return x + 0.5 * h * (u + field(x + h * u, t_next)[0])

    def body(x, inputs):
        i, t, t_next = inputs
        key_i = jax.random.fold_in(key_loop, i)
        x, t = churn(x, t, key_i)
        x = step(x, t, t_next)
        alpha_next, sigma_next, _, _ = coefficients(path, t_next)
        x = paste(x, alpha_next, sigma_next, jax.random.fold_in(key_i, 1))
        return x, x if return_trajectory else None

    key_init, key_loop = jax.random.split(key)
    levels = jnp.asarray(grid, dtype)
    if x_init is None:
        x = coefficients(path, levels[0])[1] * jax.random.normal(key_init, shape, dtype)
    elif x_init.shape != shape:
        raise ValueError(f"x_init must have shape {shape}, got {x_init.shape}")
    else:
        x = x_init.astype(dtype)
    x = paste(x, *coefficients(path, levels[0])[:2], jax.random.fold_in(key_init, 1))
    start = x
    steps = jnp.arange(num_steps - 1)
    x, passed = jax.lax.scan(body, x, (steps, levels[:-1], levels[1:]))
    last = jax.random.fold_in(key_loop, num_steps - 1)
    x, t = churn(x, levels[-1], last)
    x0 = field(x, t)[1]
    samples = paste(x0, jnp.ones((), dtype), jnp.zeros((), dtype), jax.random.fold_in(last, 1))
    if not return_trajectory:
        return samples
    states = [start[None]] + ([passed] if num_steps > 1 else [])
    times = list(grid)
    if path.alpha_sigma_value(path.t_min)[1] == 0.0 and grid[-1] != path.t_min:
        states.append(samples[None])
        times.append(path.t_min)
    return samples, jnp.concatenate(states), np.asarray(times, np.float64)

