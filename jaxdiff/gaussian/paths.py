r"""Continuous-time Gaussian paths :math:`x_t = \alpha(t)\,x_0 + \sigma(t)\,\epsilon`.

A :class:`Path` is a pair of pure functions of a continuous time ``t`` on an interval
``[t_min, t_max]`` (clean end first), not necessarily variance-preserving:

* ``rectified_flow`` (Liu et al. 2023; Lipman et al. 2023's optimal-transport path):
  :math:`\alpha = 1 - t`, :math:`\sigma = t`, :math:`t \in [0, 1]`.
* ``vp_cosine`` (Nichol & Dhariwal 2021 in continuous time, truncated in log-SNR as in
  Hoogeboom et al. 2023): :math:`\lambda(t) = -2\log\tan(a t + b)` with
  :math:`\lambda(0) = \lambda_\max`, :math:`\lambda(1) = \lambda_\min`.
* ``vp_linear`` (Song et al. 2021's VP SDE, :math:`\beta(t) = \beta_0 + t(\beta_1 - \beta_0)`):
  :math:`\lambda(t) = -\log\mathrm{expm1}(\beta_0 t + \tfrac12(\beta_1-\beta_0) t^2)`,
  :math:`t \in [10^{-5}, 1]`.
* ``vp_sigmoid`` (Chen 2023, Alg. 1 in continuous time), truncated in log-SNR.
* ``vp_log_linear`` (VDM's fixed schedule, Kingma et al. 2021): :math:`\lambda` linear in
  ``t`` from 13.3 to -5.
* ``ve`` (variance exploding, EDM's :math:`\alpha = 1`; Karras et al. 2022): indexed by
  :math:`t = \sigma \in [\sigma_\min, \sigma_\max]`.

The VP paths are defined by their log-SNR :math:`\lambda(t)` with
:math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`, :math:`\sigma^2 = \mathrm{sigmoid}(-\lambda)`
(vdm's numerics, as the discrete schedules); for the others :math:`\lambda = 2(\log\alpha -
\log\sigma)` from their exact :math:`\alpha, \sigma`. Time derivatives
:math:`\dot\alpha, \dot\sigma` come from ``jax.jvp`` of the same functions.

``model_time(t)`` is what the network is told: ``1000 t`` for the paths on ``[0, 1]``
(diffusers' and SD3's convention, so the sinusoidal embedding of
:func:`jaxdiff.models.embeddings.timestep_embedding` sees timestep units) and EDM's
:math:`c_\text{noise} = \tfrac14\ln\sigma` for ``ve``.

The four predictions a network may make (:func:`x0_eps_from_output`, :func:`output_target`):
``eps``; ``x0``; ``v`` :math:`= \alpha\epsilon - \sigma x_0` (Salimans & Ho 2022); and
``velocity`` :math:`u = \dot\alpha x_0 + \dot\sigma\epsilon = \mathrm dx_t/\mathrm dt`
(flow matching; :math:`u = \epsilon - x_0` on the rectified-flow path).
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import check_choice
from jaxdiff.gaussian.forward import expand_to

CONTINUOUS_PREDICTIONS = ("eps", "x0", "v", "velocity")


@dataclasses.dataclass(frozen=True)
class Path:
    r"""A continuous-time Gaussian path; hashable (its functions are static under ``jit``).

    Attributes:
      name: a key of :data:`PATHS`.
      alpha_sigma: ``t -> (alpha, sigma)``, elementwise.
      log_snr: ``t -> lambda``, elementwise, decreasing in ``t``.
      time_at: the inverse of ``log_snr``: ``lambda -> t``, elementwise.
      model_time: ``t -> the network's time input``, elementwise.
      t_min: the clean end of the interval (where sampling stops).
      t_max: the noisy end (where sampling starts from the prior).
      sampling_spacing: the samplers' default time grid
        (:func:`jaxdiff.gaussian.ode.time_grid`), chosen by measurement on the analytic
        mixture (``experiments/results/ode_matrix.json``): ``uniform`` in ``t``, except
        ``karras`` for ``ve`` (EDM) and ``vp_sigmoid``, whose :math:`\dot\alpha` is ~270 at
        ``t_max`` (Euler / Heun on a uniform grid miss the mixture's weights by 0.3-0.4).
      prior_std: the standard deviation of the prior :math:`x_{t_\max} \sim \mathcal N(0,
        s^2 I)`: :math:`\sigma(t_\max)` (1 for the paths on ``[0, 1]``, :math:`\sigma_\max`
        for ``ve``).
    """

    name: str
    alpha_sigma: Callable
    log_snr: Callable
    time_at: Callable
    model_time: Callable
    t_min: float
    t_max: float
    sampling_spacing: str = "uniform"

    def alpha_sigma_value(self, t: float) -> tuple[float, float]:
        """``(alpha, sigma)`` at a constant ``t`` as Python floats (also under ``jit``)."""
        with jax.ensure_compile_time_eval():
            alpha, sigma = self.alpha_sigma(np.float64(t))
            return float(alpha), float(sigma)

    @property
    def prior_std(self) -> float:
        return self.alpha_sigma_value(self.t_max)[1]


def _sigmoid(xp, x):
    return 1.0 / (1.0 + xp.exp(-x))


def _vp(log_snr_fn):
    """``alpha_sigma`` of a variance-preserving path from its log-SNR."""
    def alpha_sigma(t):
        lam = log_snr_fn(t)
        return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))
    return alpha_sigma


def _thousand(t):
    return 1000.0 * t


def rectified_flow() -> Path:
    r"""The straight path :math:`x_t = (1 - t) x_0 + t\epsilon`, :math:`t \in [0, 1]`
    (Liu et al. 2023; the conditional OT path of Lipman et al. 2023 with
    :math:`\sigma_\min = 0`; SD3's training path)."""
    return Path(name="rectified_flow", alpha_sigma=lambda t: (1.0 - t, t),
                log_snr=lambda t: 2.0 * (jnp.log1p(-t) - jnp.log(t)),
                time_at=lambda lam: jax.nn.sigmoid(-0.5 * lam),
                model_time=_thousand, t_min=0.0, t_max=1.0)


def vp_cosine(*, log_snr_min: float = -15.0, log_snr_max: float = 15.0) -> Path:
    r"""The cosine VP path: :math:`\alpha = \cos(\tfrac\pi2 u)`, :math:`\sigma =
    \sin(\tfrac\pi2 u)`, i.e. :math:`\lambda = -2\log\tan(\tfrac\pi2 u)`, with ``u`` an
    affine map of ``t`` in [0, 1] that truncates :math:`\lambda` to ``[log_snr_min,
    log_snr_max]`` (Hoogeboom et al. 2023, ``logsnr_schedule_cosine``)."""
    _check_log_snr_range(log_snr_min, log_snr_max)
    b = math.atan(math.exp(-0.5 * log_snr_max))
    a = math.atan(math.exp(-0.5 * log_snr_min)) - b
    log_snr = lambda t: -2.0 * jnp.log(jnp.tan(a * t + b))  # noqa: E731
    return Path(name="vp_cosine", alpha_sigma=_vp(log_snr), log_snr=log_snr,
                time_at=lambda lam: (jnp.arctan(jnp.exp(-0.5 * lam)) - b) / a,
                model_time=_thousand, t_min=0.0, t_max=1.0)


def vp_linear(*, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-5) -> Path:
    r"""Song et al. 2021's VP SDE (the continuous limit of DDPM's linear betas):
    :math:`\log\alpha^2 = -(\beta_0 t + \tfrac12(\beta_1 - \beta_0)t^2)`,
    :math:`\lambda = -\log\mathrm{expm1}(\beta_0 t + \tfrac12(\beta_1 - \beta_0)t^2)`,
    :math:`t \in [t_\min, 1]` (:math:`\lambda(1) \approx -10`)."""
    if not 0 < beta_min < beta_max:
        raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min}")

    half_slope = 0.5 * (beta_max - beta_min)

    def log_snr(t):
        return -jnp.log(jnp.expm1(beta_min * t + half_slope * t**2))

    def time_at(lam):   # the positive root of half_slope t^2 + beta_min t = log1p(e^-lam)
        c = jnp.logaddexp(0.0, -lam)
        return 2.0 * c / (beta_min + jnp.sqrt(beta_min**2 + 4.0 * half_slope * c))

    return Path(name="vp_linear", alpha_sigma=_vp(log_snr), log_snr=log_snr, time_at=time_at,
                model_time=_thousand, t_min=t_min, t_max=1.0)


def vp_sigmoid(*, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
               log_snr_min: float = -15.0, log_snr_max: float = 15.0) -> Path:
    r"""Chen 2023's sigmoid schedule in continuous time:
    :math:`\alpha^2(u) = \frac{\mathrm{sig}(e/\tau) - \mathrm{sig}((u(e-s)+s)/\tau)}
    {\mathrm{sig}(e/\tau) - \mathrm{sig}(s/\tau)}`, with ``u`` an affine map of ``t`` in
    [0, 1] that truncates :math:`\lambda` to ``[log_snr_min, log_snr_max]``."""
    if not end > start or not tau > 0:
        raise ValueError(f"need end > start and tau > 0, got start={start}, end={end}, tau={tau}")
    _check_log_snr_range(log_snr_min, log_snr_max)
    v_start, v_end = _sigmoid(math, start / tau), _sigmoid(math, end / tau)

    def raw(xp, u):
        alpha2 = (v_end - _sigmoid(xp, (u * (end - start) + start) / tau)) / (v_end - v_start)
        return xp.log(alpha2) - xp.log1p(-alpha2)

    def u_at(xp, lam):   # invert: sigmoid(z / tau) = v_end - alpha^2 (v_end - v_start)
        level = v_end - _sigmoid(xp, lam) * (v_end - v_start)
        return (tau * (xp.log(level) - xp.log1p(-level)) - start) / (end - start)

    u0, u1 = u_at(math, log_snr_max), u_at(math, log_snr_min)
    log_snr = lambda t: raw(jnp, u0 + (u1 - u0) * t)  # noqa: E731
    return Path(name="vp_sigmoid", alpha_sigma=_vp(log_snr), log_snr=log_snr,
                time_at=lambda lam: (u_at(jnp, lam) - u0) / (u1 - u0),
                model_time=_thousand, t_min=0.0, t_max=1.0, sampling_spacing="karras")


def vp_log_linear(*, log_snr_min: float = -5.0, log_snr_max: float = 13.3) -> Path:
    r"""VDM's fixed noise schedule (Kingma et al. 2021, Sec. 3.2 / App. B: :math:`\gamma =
    -\lambda` linear from -13.3 to 5 on CIFAR-10): :math:`\lambda(t) = \lambda_\max +
    (\lambda_\min - \lambda_\max)\,t`, :math:`t \in [0, 1]`."""
    _check_log_snr_range(log_snr_min, log_snr_max)
    span = log_snr_min - log_snr_max
    log_snr = lambda t: log_snr_max + span * t  # noqa: E731
    return Path(name="vp_log_linear", alpha_sigma=_vp(log_snr), log_snr=log_snr,
                time_at=lambda lam: (lam - log_snr_max) / span, model_time=_thousand,
                t_min=0.0, t_max=1.0)


def ve(*, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Path:
    r"""The variance-exploding path :math:`x_\sigma = x_0 + \sigma\epsilon` indexed by
    :math:`t = \sigma \in [\sigma_\min, \sigma_\max]` (Karras et al. 2022, EDM's defaults);
    the network is told :math:`c_\text{noise} = \tfrac14\ln\sigma` (EDM, Table 1)."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    return Path(name="ve", alpha_sigma=lambda t: (jnp.ones_like(t), t),
                log_snr=lambda t: -2.0 * jnp.log(t), time_at=lambda lam: jnp.exp(-0.5 * lam),
                model_time=lambda t: 0.25 * jnp.log(t),
                t_min=float(sigma_min), t_max=float(sigma_max), sampling_spacing="karras")


PATHS = {"rectified_flow": rectified_flow, "vp_cosine": vp_cosine, "vp_linear": vp_linear,
         "vp_sigmoid": vp_sigmoid, "vp_log_linear": vp_log_linear, "ve": ve}


def _check_log_snr_range(log_snr_min, log_snr_max):
    if not log_snr_min < log_snr_max:
        raise ValueError(f"need log_snr_min < log_snr_max, got {log_snr_min}, {log_snr_max}")


def get_path(name: str, **options) -> Path:
    """The path called ``name`` (a key of :data:`PATHS`) with its constructor's options."""
    check_choice("path", name, tuple(PATHS))
    return PATHS[name](**options)


def with_model_time(net_fn, path: Path):
    """``denoise_fn(x_t, t, cond)`` on the path's times from a network
    ``net_fn(x_t, time_input, cond)`` that is told ``path.model_time(t)``."""
    return lambda x_t, t, cond=None: net_fn(x_t, path.model_time(t), cond)


def coefficients(path: Path, t: jax.Array):
    r""":math:`(\alpha, \sigma, \dot\alpha, \dot\sigma)` at ``t`` (elementwise; the
    derivatives by ``jax.jvp``)."""
    t = jnp.asarray(t)
    (alpha, sigma), (d_alpha, d_sigma) = jax.jvp(path.alpha_sigma, (t,), (jnp.ones_like(t),))
    return alpha, sigma, d_alpha, d_sigma


def check_times(name: str, t, path: Path) -> None:
    """Raises a ``ValueError`` naming ``name`` when concrete times leave the path's
    interval (traced values are not checked)."""
    if isinstance(t, jax.core.Tracer):
        return
    values = np.asarray(t, np.float64)
    tol = 1e-6 * max(1.0, abs(path.t_max))
    if values.size and (values.min() < path.t_min - tol or values.max() > path.t_max + tol):
        raise ValueError(f"{name} must lie in the {path.name} path's interval "
                         f"[{path.t_min}, {path.t_max}], got values in "
                         f"[{values.min()}, {values.max()}]")


def check_continuous_prediction(prediction: str) -> None:
    """Raises a ``ValueError`` naming ``prediction`` unless it is one of
    :data:`CONTINUOUS_PREDICTIONS`."""
    check_choice("prediction", prediction, CONTINUOUS_PREDICTIONS)


def x0_eps_from_output(path: Path, prediction: str, out: jax.Array, x_t: jax.Array,
                       t: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""The pair :math:`(\hat x_0, \hat\epsilon)` from a network output of kind
    ``prediction`` at per-example times ``t`` ``[B]``, solving :math:`x_t = \alpha\hat x_0 +
    \sigma\hat\epsilon` with

    .. math::
        \text{v: } \hat x_0 = \frac{\alpha x_t - \sigma\hat v}{\alpha^2 + \sigma^2},\
        \hat\epsilon = \frac{\sigma x_t + \alpha\hat v}{\alpha^2 + \sigma^2};\quad
        \text{velocity: } \hat x_0 = \frac{\dot\sigma x_t - \sigma\hat u}{\alpha\dot\sigma
        - \sigma\dot\alpha},\ \hat\epsilon = \frac{\alpha\hat u - \dot\alpha x_t}{\alpha
        \dot\sigma - \sigma\dot\alpha}.
    """
    check_continuous_prediction(prediction)
    alpha, sigma, d_alpha, d_sigma = (expand_to(c, x_t) for c in coefficients(path, t))
    if prediction == "eps":
        return (x_t - sigma * out) / alpha, out
    if prediction == "x0":
        return out, (x_t - alpha * out) / sigma
    if prediction == "v":
        norm = alpha**2 + sigma**2
        return (alpha * x_t - sigma * out) / norm, (sigma * x_t + alpha * out) / norm
    det = alpha * d_sigma - sigma * d_alpha
    return (d_sigma * x_t - sigma * out) / det, (alpha * out - d_alpha * x_t) / det


def output_target(path: Path, prediction: str, x0: jax.Array, eps: jax.Array,
                  t: jax.Array) -> jax.Array:
    r"""The regression target of ``prediction`` at per-example times ``t`` ``[B]``:
    :math:`\epsilon`, :math:`x_0`, :math:`\alpha\epsilon - \sigma x_0` or
    :math:`\dot\alpha x_0 + \dot\sigma\epsilon`."""
    check_continuous_prediction(prediction)
    alpha, sigma, d_alpha, d_sigma = (expand_to(c, x0) for c in coefficients(path, t))
    return {"eps": lambda: eps, "x0": lambda: x0,
            "v": lambda: alpha * eps - sigma * x0,
            "velocity": lambda: d_alpha * x0 + d_sigma * eps}[prediction]()


def eps_error_scale(path: Path, prediction: str, t: jax.Array) -> jax.Array:
    r"""``[B]``: how much an error of the ``prediction`` output moves :math:`\hat\epsilon`,
    squared: :math:`\|\Delta\hat\epsilon\|^2 = c\,\|\Delta\,\text{output}\|^2` with
    :math:`c` 1 (eps), :math:`\alpha^2/\sigma^2` (x0), :math:`\alpha^2/(\alpha^2+\sigma^2)^2`
    (v) and :math:`\alpha^2/(\alpha\dot\sigma - \sigma\dot\alpha)^2` (velocity)."""
    check_continuous_prediction(prediction)
    alpha, sigma, d_alpha, d_sigma = coefficients(path, t)
    return {"eps": lambda: jnp.ones_like(alpha), "x0": lambda: (alpha / sigma) ** 2,
            "v": lambda: (alpha / (alpha**2 + sigma**2)) ** 2,
            "velocity": lambda: (alpha / (alpha * d_sigma - sigma * d_alpha)) ** 2}[prediction]()
