r"""Noise schedules as pure functions returning a :class:`Schedule` pytree.

A discrete schedule of ``T`` steps is fixed by its cumulative signal level
:math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`, equivalently by its log signal-to-noise
ratio :math:`\lambda_t = \log \bar\alpha_t - \log(1 - \bar\alpha_t)`. Every array of the
:class:`Schedule` is derived from :math:`\lambda_t` (vdm's numerics: ``log_sigmoid`` and
``expm1`` keep :math:`1 - \bar\alpha_t` exact even when it is ~1e-5), in float64 when the
schedule is built from NumPy values and in the traced dtype when it is respaced under ``jit``.

Index convention: ``t = 0 .. T-1`` stands for the paper's step ``t + 1``; ``alpha_bars[0]`` is
:math:`\bar\alpha_1` and the data :math:`x_0` sits before index 0.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Schedule(NamedTuple):
    r"""A discrete-time Gaussian diffusion schedule; every field is an array of shape ``[T]``.

    Attributes:
      betas: :math:`\beta_t`, the variance of step :math:`q(x_t | x_{t-1})`.
      log_snrs: :math:`\lambda_t = \log(\bar\alpha_t / (1 - \bar\alpha_t))`.
      alpha_bars: :math:`\bar\alpha_t`.
      alpha_bars_prev: :math:`\bar\alpha_{t-1}` with :math:`\bar\alpha_0 = 1` before index 0.
      posterior_variance: :math:`\tilde\beta_t = \beta_t (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)`.
      posterior_log_variance_clipped: :math:`\log\tilde\beta_t`, with index 0 (where
        :math:`\tilde\beta = 0`) set to index 1's value, as in improved DDPM.
      posterior_mean_coef_x0: :math:`\sqrt{\bar\alpha_{t-1}}\,\beta_t / (1-\bar\alpha_t)`.
      posterior_mean_coef_xt: :math:`\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1}) / (1-\bar\alpha_t)`.
    """

    betas: jax.Array
    log_snrs: jax.Array
    alpha_bars: jax.Array
    alpha_bars_prev: jax.Array
    posterior_variance: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef_x0: jax.Array
    posterior_mean_coef_xt: jax.Array

    @property
    def num_steps(self) -> int:
        """The number of diffusion steps ``T`` (static: the arrays' length)."""
        return self.betas.shape[0]


def _log_sigmoid(xp, x):
    return -xp.logaddexp(0.0, -x)


def schedule_from_log_snrs(log_snrs, *, dtype=jnp.float32) -> Schedule:
    r"""Builds a :class:`Schedule` from a strictly decreasing log-SNR sequence :math:`\lambda_t`.

    With :math:`\log\bar\alpha_t = \log\sigma(\lambda_t)` and
    :math:`\log(1-\bar\alpha_t) = \log\sigma(-\lambda_t)`:

    .. math::
        \beta_t = -\mathrm{expm1}(\log\bar\alpha_t - \log\bar\alpha_{t-1}), \quad
        \tilde\beta_t = \beta_t \exp(\log(1-\bar\alpha_{t-1}) - \log(1-\bar\alpha_t)).

    NumPy input is computed in float64 and cast to ``dtype`` at the end; JAX input (e.g. a
    respaced schedule under ``jit``) is computed in its own dtype.
    """
    xp = np if isinstance(log_snrs, np.ndarray) else jnp
    lam = xp.asarray(log_snrs, dtype=np.float64) if xp is np else log_snrs
    if lam.ndim != 1 or lam.shape[0] < 2:
        raise ValueError(f"log_snrs must be a 1-D array of at least 2 steps, got shape {lam.shape}")
    if xp is np and not np.all(np.diff(lam) < 0):
        raise ValueError("log_snrs must be strictly decreasing (more noise at every step)")
    log_ab = _log_sigmoid(xp, lam)
    log_1m_ab = _log_sigmoid(xp, -lam)
    zero = xp.zeros((1,), dtype=lam.dtype)
    log_ab_prev = xp.concatenate([zero, log_ab[:-1]])
    # log(1 - alpha_bar_prev); -inf before index 0 where alpha_bar_prev = 1.
    log_1m_ab_prev = xp.concatenate([zero - xp.inf, log_1m_ab[:-1]])
    betas = -xp.expm1(log_ab - log_ab_prev)
    posterior_variance = betas * xp.exp(log_1m_ab_prev - log_1m_ab)
    log_post = xp.log(xp.concatenate([posterior_variance[1:2], posterior_variance[1:]]))
    coef_x0 = xp.exp(0.5 * log_ab_prev - log_1m_ab) * betas
    coef_xt = xp.exp(0.5 * (log_ab - log_ab_prev) + log_1m_ab_prev - log_1m_ab)
    fields = dict(
        betas=betas,
        log_snrs=lam,
        alpha_bars=xp.exp(log_ab),
        alpha_bars_prev=xp.exp(log_ab_prev),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=log_post,
        posterior_mean_coef_x0=coef_x0,
        posterior_mean_coef_xt=coef_xt,
    )
    return Schedule(**{k: jnp.asarray(v, dtype=dtype) for k, v in fields.items()})


def schedule_from_betas(betas, *, dtype=jnp.float32) -> Schedule:
    r"""Builds a :class:`Schedule` from per-step variances :math:`\beta_t \in (0, 1)`.

    :math:`\log\bar\alpha_t = \sum_{s\le t}\mathrm{log1p}(-\beta_s)`, in float64.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1:
        raise ValueError(f"betas must be a 1-D array, got shape {betas.shape}")
    outside = np.flatnonzero(~((betas > 0) & (betas < 1)))
    if outside.size:
        first = int(outside[0])
        raise ValueError(f"betas must lie in (0, 1): betas[{first}] = {float(betas[first])!r} "
                         f"({outside.size} value(s) outside)")
    log_ab = np.cumsum(np.log1p(-betas))
    return schedule_from_log_snrs(log_ab - np.log(-np.expm1(log_ab)), dtype=dtype)


def _check_num_steps(num_steps):
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")


def linear_schedule(*, num_steps: int = 1000, beta_start: float | None = None,
                    beta_end: float | None = None, dtype=jnp.float32) -> Schedule:
    r"""Linear :math:`\beta_t` from ``beta_start`` to ``beta_end`` (Ho et al. 2020, Sec. 4).

    The defaults are 1e-4 and 0.02 scaled by ``1000 / num_steps`` (Nichol & Dhariwal 2021), i.e.
    exactly Ho et al.'s values at ``T = 1000``.
    """
    _check_num_steps(num_steps)
    scale = 1000.0 / num_steps
    beta_start = 1e-4 * scale if beta_start is None else beta_start
    beta_end = 0.02 * scale if beta_end is None else beta_end
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
                         f"beta_end={beta_end} (the defaults scale by 1000 / num_steps)")
    return schedule_from_betas(np.linspace(beta_start, beta_end, num_steps), dtype=dtype)


def _schedule_from_alpha_bar_fn(alpha_bar_fn, num_steps, max_beta, dtype) -> Schedule:
    """Betas from ratios of a continuous alpha_bar(u), u in [0, 1], clipped at ``max_beta``."""
    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    alpha_bar = alpha_bar_fn(u)
    betas = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    return schedule_from_betas(betas, dtype=dtype)


def cosine_schedule(*, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999,
                    dtype=jnp.float32) -> Schedule:
    r"""Cosine schedule (Nichol & Dhariwal 2021, eq. 17).

    .. math::
        \bar\alpha(t) = f(t)/f(0), \quad f(t) = \cos^2\Big(\frac{t/T + s}{1 + s}\frac{\pi}{2}\Big),
        \quad \beta_t = \min\big(1 - \bar\alpha(t)/\bar\alpha(t-1),\ 0.999\big).
    """
    _check_num_steps(num_steps)
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    return _schedule_from_alpha_bar_fn(lambda u: f(u) / f(0.0), num_steps, max_beta, dtype)


def sigmoid_schedule(*, num_steps: int = 1000, start: float = -3.0, end: float = 3.0,
                     tau: float = 1.0, max_beta: float = 0.999, dtype=jnp.float32) -> Schedule:
    r"""Sigmoid schedule (Chen 2023, "On the importance of noise scheduling", Alg. 1).

    .. math::
        \bar\alpha(u) = \frac{\sigma(e/\tau) - \sigma((u(e-s)+s)/\tau)}
                             {\sigma(e/\tau) - \sigma(s/\tau)},\quad u = t/T,

    with betas from the ratios of consecutive values, clipped at ``max_beta``.
    """
    _check_num_steps(num_steps)
    if not end > start or not tau > 0:
        raise ValueError(f"need end > start and tau > 0, got start={start}, end={end}, tau={tau}")
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)
    fn = lambda u: (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)  # noqa: E731
    return _schedule_from_alpha_bar_fn(fn, num_steps, max_beta, dtype)


SPACINGS = ("uniform", "log_snr", "karras")


def _strictly_increasing(steps: np.ndarray, num_train_steps: int) -> np.ndarray:
    """Rounded grid points made distinct: pushed up past their predecessor, then capped so
    that the points above still fit below ``num_train_steps``."""
    steps = np.clip(np.round(steps).astype(np.int64), 0, num_train_steps - 1)
    for i in range(1, len(steps)):
        steps[i] = max(steps[i], steps[i - 1] + 1)
    caps = num_train_steps - len(steps) + np.arange(len(steps))
    return np.minimum(steps, caps).astype(np.int32)


def sampling_timesteps(schedule: Schedule, num_steps: int, *,
                       spacing: str = "uniform") -> np.ndarray:
    r"""``num_steps`` increasing timestep indices from 0 to ``T - 1`` (both included).

    ``uniform`` spaces them evenly in ``t`` (Song et al. 2021); ``log_snr`` evenly in
    :math:`\lambda` (Lu et al. 2022, DPM-Solver's choice); ``karras`` evenly in
    :math:`\sigma_e^{1/\rho}` with :math:`\sigma_e = e^{-\lambda/2}` and :math:`\rho = 7`
    (Karras et al. 2022, eq. 5). Grid points are rounded to the nearest index and made
    distinct. A static NumPy ``int32`` array; ``log_snr`` and ``karras`` need a concrete
    (not traced) schedule.
    """
    num_train_steps = schedule.num_steps
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    if not isinstance(num_steps, (int, np.integer)) or not 2 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be an int in [2, {num_train_steps}] (the schedule's "
                         f"T), got {num_steps!r}")
    if spacing == "uniform":
        return _strictly_increasing(np.linspace(0, num_train_steps - 1, num_steps),
                                    num_train_steps)
    if isinstance(schedule.log_snrs, jax.core.Tracer):
        raise ValueError(f"spacing={spacing!r} needs a concrete schedule: build the schedule "
                         "outside jit (close over it) or use spacing='uniform'")
    lam = np.asarray(schedule.log_snrs, np.float64)
    if spacing == "log_snr":
        grid = np.linspace(lam[0], lam[-1], num_steps)
    else:
        rho = 7.0
        sig = np.exp(-0.5 * lam[[0, -1]]) ** (1 / rho)
        grid = -2.0 * rho * np.log(np.linspace(sig[0], sig[1], num_steps))
    # lam decreases with t: interpolate the (fractional) index of each grid level.
    steps = np.interp(-grid, -lam, np.arange(num_train_steps, dtype=np.float64))
    return _strictly_increasing(steps, num_train_steps)


def respace(schedule: Schedule, timesteps) -> Schedule:
    r"""The schedule that jumps between the given timesteps (improved DDPM, Sec. 4).

    Keeps :math:`\bar\alpha` at the chosen indices :math:`\tau_1 < \dots < \tau_S` and derives
    the jump variances :math:`\beta'_i = 1 - \bar\alpha_{\tau_i}/\bar\alpha_{\tau_{i-1}}` and
    every posterior coefficient from them, so that any sampler or bound written for a schedule
    runs on the shorter chain. Works under ``jit`` (``timesteps`` is static).
    """
    timesteps = np.asarray(timesteps)
    if timesteps.ndim != 1 or timesteps.shape[0] < 2 or not np.all(np.diff(timesteps) > 0):
        raise ValueError("timesteps must be a strictly increasing 1-D array of >= 2 indices")
    if timesteps[0] < 0 or timesteps[-1] >= schedule.num_steps:
        raise ValueError(f"timesteps must lie in [0, {schedule.num_steps}), got "
                         f"[{timesteps[0]}, {timesteps[-1]}]")
    if timesteps.shape[0] == schedule.num_steps:
        return schedule
    return schedule_from_log_snrs(schedule.log_snrs[timesteps], dtype=schedule.log_snrs.dtype)
