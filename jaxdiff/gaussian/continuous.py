r"""Continuous-time training: time densities and the weighted regression loss on a
:class:`~jaxdiff.gaussian.paths.Path`.

.. math::
    L = w(t)\,\tfrac1D\,\|f_\theta(x_t, t) - y_t\|^2, \quad
    x_t = \alpha(t) x_0 + \sigma(t)\epsilon, \quad t \sim p(t),

with :math:`y_t` the target of the prediction (eps, x0, v or the flow-matching velocity
:math:`\dot\alpha x_0 + \dot\sigma\epsilon`; Lipman et al. 2023, eq. 23 on the rectified-flow
path). ``denoise_fn(x_t, t, cond)`` is called with the path's time ``t`` (``float [B]``).

**Time densities** (:func:`draw_times`): ``uniform``; ``logit_normal`` (SD3, Esser et al.
2024, eq. 19: :math:`u = \mathrm{sigmoid}(m + s n)`); ``mode`` (SD3 eq. 20:
:math:`u = 1 - v - s(\cos^2(\tfrac\pi2 v) - 1 + v)`); these draw :math:`u \in [0, 1]`,
shifted by :math:`u' = \frac{k u}{1 + (k - 1) u}` (SD3 eq. 23; :func:`resolution_shift`)
and mapped affinely onto ``[t_min, t_max]`` (kept 1e-5 of the way off both ends, where
rectified flow's alpha or sigma is 0). ``log_normal`` (EDM, Karras et al. 2022:
:math:`\ln\sigma \sim \mathcal N(P_\text{mean}, P_\text{std}^2)`) draws ``t = sigma`` of the
``ve`` path directly.

**Weightings** (:data:`WEIGHTINGS`), all but ``uniform`` defined on the eps error
:math:`\|\hat\epsilon - \epsilon\|^2` and carried to the network's output by
:func:`~jaxdiff.gaussian.paths.eps_error_scale`, so that one weighting means one objective
whatever the prediction (Kingma & Gao 2023); :math:`\sigma_e^2 = e^{-\lambda}`:

=============  ============================================================================
``uniform``    1 on the output's own MSE (:math:`L_\text{simple}` for eps; flow matching's
               conditional loss for velocity)
``min_snr``    :math:`\min(e^\lambda, \gamma)/e^\lambda` (Hang et al. 2023; x0-space weight
               :math:`\min(\mathrm{SNR}, \gamma)`)
``edm``        :math:`(\sigma_e^2 + \sigma_d^2)/\sigma_d^2` (Karras et al. 2022, eq. 8:
               :math:`\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2` on x0)
``sigmoid``    :math:`-\tfrac12\dot\lambda\,\mathrm{sigmoid}(b - \lambda)\,(t_\max - t_\min)`
               (Kingma & Gao 2023, Sec. 5; needs ``uniform`` times)
``likelihood`` :math:`-\tfrac12\dot\lambda\,(t_\max - t_\min)`: with ``uniform`` times the
               mean over dims of VDM's continuous diffusion loss :math:`L_\infty` (Kingma
               et al. 2021, eq. 17), in nats per dim
=============  ============================================================================
"""

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_batch, check_choice
from jaxdiff.gaussian.forward import expand_to
from jaxdiff.gaussian.paths import (
    Path,
    check_continuous_prediction,
    check_times,
    coefficients,
    eps_error_scale,
    output_target,
)

DENSITIES = ("uniform", "logit_normal", "mode", "log_normal")
WEIGHTINGS = ("uniform", "min_snr", "edm", "sigmoid", "likelihood")
_DENSITY_DEFAULTS = {"logit_normal": (0.0, 1.0), "log_normal": (-1.2, 1.2)}
_END_MARGIN = 1e-5
_MODE_SCALE_RANGE = (-1.0, 2.0 / (3.141592653589793 - 2.0))   # f_mode monotone on [0, 1]


def shift_times(u: jax.Array, shift: float) -> jax.Array:
    r"""SD3's timestep shift (Esser et al. 2024, eq. 23) on :math:`u \in [0, 1]` (1 = noise):
    :math:`u' = k u / (1 + (k - 1) u)`; :math:`k > 1` moves times towards the noise."""
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * u / (1.0 + (shift - 1.0) * u)


def resolution_shift(num_pixels: int, base_pixels: int = 256 * 256) -> float:
    r"""SD3's resolution-dependent shift :math:`k = \sqrt{m / n}` (Esser et al. 2024, eq. 23):
    ``num_pixels`` :math:`m` of the target resolution, ``base_pixels`` :math:`n` of the one
    the density was tuned on."""
    if not (isinstance(num_pixels, int) and num_pixels > 0 and isinstance(base_pixels, int)
            and base_pixels > 0):
        raise ValueError(f"num_pixels and base_pixels must be ints > 0, got {num_pixels!r}, "
                         f"{base_pixels!r}")
    return (num_pixels / base_pixels) ** 0.5


def draw_times(key: jax.Array, num: int, path: Path, *, density: str = "uniform",
               mean: float | None = None, std: float | None = None, mode_scale: float = 1.29,
               shift: float = 1.0, dtype=jnp.float32) -> jax.Array:
    r"""``num`` training times of ``path`` from ``density`` (module docstring), ``[num]``.

    Args:
      key: PRNG key.
      num: how many.
      path: the path (its ``[t_min, t_max]``).
      density: ``uniform``, ``logit_normal`` (``mean`` m, ``std`` s; default 0, 1),
        ``mode`` (``mode_scale`` s, SD3's 1.29) or ``log_normal`` (``mean`` / ``std`` of
        :math:`\ln\sigma`, default EDM's -1.2, 1.2; the ``ve`` path only).
      shift: SD3's shift :math:`k` of ``u`` (not for ``log_normal``).
    """
    check_choice("density", density, DENSITIES)
    if (mean is not None or std is not None) and density not in _DENSITY_DEFAULTS:
        raise ValueError(f"mean / std parameterise the logit_normal and log_normal densities, "
                         f"not {density!r}")
    if mode_scale != 1.29 and density != "mode":
        raise ValueError(f"mode_scale parameterises the 'mode' density, not {density!r}")
    lo, hi = _MODE_SCALE_RANGE
    if not lo <= mode_scale <= hi:
        raise ValueError(f"mode_scale must lie in [{lo}, {hi:.4f}] (where SD3's f_mode maps "
                         f"[0, 1] onto itself), got {mode_scale}")
    m0, s0 = _DENSITY_DEFAULTS.get(density, (0.0, 1.0))
    m, s = (m0 if mean is None else mean), (s0 if std is None else std)
    if not s > 0:
        raise ValueError(f"std must be > 0, got {s}")
    if density == "log_normal":
        if path.name != "ve":
            raise ValueError(f"density 'log_normal' draws sigma of the 've' path; path is "
                             f"{path.name!r} (use uniform, logit_normal or mode)")
        if shift != 1.0:
            raise ValueError("shift applies to the densities on [0, 1], not to log_normal")
        return jnp.exp(m + s * jax.random.normal(key, (num,), dtype))
    if density == "uniform":
        u = jax.random.uniform(key, (num,), dtype)
    elif density == "logit_normal":
        u = jax.nn.sigmoid(m + s * jax.random.normal(key, (num,), dtype))
    else:
        v = jax.random.uniform(key, (num,), dtype)
        u = 1.0 - v - mode_scale * (jnp.cos(0.5 * jnp.pi * v) ** 2 - 1.0 + v)
    u = shift_times(u, shift) if shift != 1.0 else u
    # Kept off the ends by 1e-5 (a mass of 2e-5 moved): at rectified flow's t = 0 and t = 1
    # sigma or alpha is 0 and the eps / x0 conversions and the likelihood weight divide by it.
    u = jnp.clip(u, _END_MARGIN, 1.0 - _END_MARGIN)
    return path.t_min + (path.t_max - path.t_min) * u


def loss_weight(path: Path, prediction: str, t: jax.Array, *, weighting: str = "uniform",
                min_snr_gamma: float = 5.0, sigma_data: float = 0.5,
                sigmoid_bias: float = 0.0) -> jax.Array:
    """``[B]``: the weight :math:`w(t)` of the ``prediction`` output's MSE (module
    docstring's table)."""
    check_choice("weighting", weighting, WEIGHTINGS)
    if weighting == "uniform":
        return jnp.ones_like(t)
    lam, d_lam = jax.jvp(path.log_snr, (t,), (jnp.ones_like(t),))
    if weighting == "min_snr":   # min(SNR, gamma) / SNR, finite at SNR = 0 and infinity
        eps_weight = jnp.minimum(1.0, min_snr_gamma * jnp.exp(-lam))
    elif weighting == "edm":
        eps_weight = (jnp.exp(-lam) + sigma_data**2) / sigma_data**2
    else:
        eps_weight = -0.5 * d_lam * (path.t_max - path.t_min)
        if weighting == "sigmoid":
            eps_weight = eps_weight * jax.nn.sigmoid(sigmoid_bias - lam)
    return eps_weight * eps_error_scale(path, prediction, t)


def continuous_loss(key: jax.Array, denoise_fn, path: Path, x0: jax.Array, *,
                    prediction: str = "velocity", cond=None, t: jax.Array | None = None,
                    density: str = "uniform", density_options: dict | None = None,
                    weighting: str = "uniform", weighting_options: dict | None = None,
                    noise: jax.Array | None = None) -> jax.Array:
    r"""The per-example loss ``[B]`` of the module docstring.

    Args:
      key: PRNG key for the times (unless ``t`` is given) and the noise.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> output`` (``t`` the path's times).
      path: the Gaussian path.
      x0: clean data ``[B, ...]``.
      prediction: what the network outputs: ``eps``, ``x0``, ``v`` or ``velocity``.
      cond: conditioning for ``denoise_fn``.
      t: fixed times ``[B]`` in the path's interval instead of drawn ones.
      density, density_options: the time density and its keyword options
        (:func:`draw_times`).
      weighting, weighting_options: the weighting and its options (:func:`loss_weight`:
        ``min_snr_gamma``, ``sigma_data``, ``sigmoid_bias``).
      noise: the noise :math:`\epsilon` coupled with each ``x0`` (shape of ``x0``) instead
        of an independent draw: reflow's pairs (Liu et al. 2023, Sec. 2.2), the prior draw
        each ``x0`` was generated from.
    """
    check_batch("x0", x0)
    check_continuous_prediction(prediction)
    batch = x0.shape[0]
    key_t, key_noise = jax.random.split(key)
    density_options = density_options or {}
    if weighting in ("sigmoid", "likelihood") and (
            density != "uniform" or density_options.get("shift", 1.0) != 1.0):
        raise ValueError(f"weighting {weighting!r} is an integral over uniform times; got "
                         f"density={density!r} with options {density_options}")
    if t is None:
        t = draw_times(key_t, batch, path, density=density, dtype=x0.dtype, **density_options)
    elif t.shape != (batch,):
        raise ValueError(f"t must have shape [B] = ({batch},), got {t.shape}")
    else:
        check_times("t", t, path)
    if noise is None:
        noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    elif noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {x0.shape}, got {noise.shape}")
    alpha, sigma, _, _ = coefficients(path, t)
    x_t = expand_to(alpha, x0) * x0 + expand_to(sigma, x0) * noise
    target = output_target(path, prediction, x0, noise, t)
    error = (denoise_fn(x_t, t, cond) - target) ** 2
    weight = loss_weight(path, prediction, t, weighting=weighting, **(weighting_options or {}))
    return weight * error.reshape(batch, -1).mean(axis=1)
