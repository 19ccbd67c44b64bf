r"""Negative log-likelihood in bits per dimension: from the variational bound and from the
probability-flow ODE.

**VLB** (Ho et al. 2020, eq. 5; Nichol & Dhariwal 2021, Sec. 3.1): every term
:math:`L_0, \dots, L_{T-1}` with one noise draw each, plus the prior term :math:`L_T`; an upper
bound on the NLL. With ``num_steps < T`` it is the bound of the respaced (shorter) chain.

**ODE** (Song et al. 2021, App. D.2): the instantaneous change of variables along the
probability-flow ODE. In EDM's variables :math:`y = x/\alpha`, :math:`\sigma_e = \sigma/\alpha`
and :math:`u = \log\sigma_e` the ODE is :math:`\mathrm d y/\mathrm d u = y - D(y, u)`, with
:math:`D` the denoiser's :math:`\hat x_0`, and

.. math::
    \log p_0(y_0) = \log p_T(y_T) + \int_{u_0}^{u_T} \big(d - \operatorname{tr}
    \partial_y D\big)\, \mathrm du,\qquad
    \log p_T(y_T) = \log\mathcal N(\alpha_T y_T; 0, I) + d\log\alpha_T.

The term :math:`d\,(u_T - u_0)` is integrated exactly; :math:`y` by a second-order exponential
integrator (exact for :math:`D` linear in :math:`u` over a step) and the trace by the
trapezoid rule, with the trace from Hutchinson's estimator
:math:`\operatorname{tr} J = \mathbb E[\epsilon^\top J \epsilon]` (Rademacher
:math:`\epsilon`, fixed along the path; Grathwohl et al. 2019) or computed exactly. The data
sit at the schedule's first level :math:`\sigma_{e,0}` (for Ho et al.'s linear schedule
:math:`\approx 0.01`).

Discrete data (``num_bins``) are uniformly dequantized in their bin of width
:math:`2/(K-1)` and the log bin width is added back, which bounds the discrete NLL.
"""

import math

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_batch, check_choice
from jaxdiff.gaussian.forward import (
    alpha_sigma,
    check_prediction,
    q_sample,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.losses import prior_kl, vlb_term
from jaxdiff.gaussian.ode import time_grid
from jaxdiff.gaussian.paths import Path, check_continuous_prediction, x0_eps_from_output
from jaxdiff.gaussian.reverse import check_variance, split_model_output
from jaxdiff.gaussian.schedules import Schedule, respace, sampling_timesteps

METHODS = ("vlb", "ode")
TRACES = ("hutchinson", "exact")


def _respaced(schedule: Schedule, num_steps: int | None, spacing: str):
    num_steps = schedule.num_steps if num_steps is None else num_steps
    taus = sampling_timesteps(schedule, num_steps, spacing=spacing)
    return respace(schedule, taus), jnp.asarray(taus)


def vlb_terms(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array, *,
              prediction: str = "eps", variance: str = "beta", num_bins: int | None = 256,
              cond=None, num_steps: int | None = None, spacing: str = "uniform",
              clip_x0: bool = False) -> jax.Array:
    r"""The bound's terms ``[S + 1, B]`` in nats: :math:`L_0, \dots, L_{S-1}`, then :math:`L_S`
    (prior). Term ``i`` draws its own :math:`x_{\tau_i}` with ``fold_in(key, i)``; one
    ``lax.scan`` over the ``S`` steps (``S = T`` unless ``num_steps`` respaces the chain)."""
    check_batch("x0", x0)
    check_prediction(prediction)
    check_variance(variance)
    rs, taus = _respaced(schedule, num_steps, spacing)
    batch = x0.shape[0]

    def term(_, i):
        index = jnp.full((batch,), i, jnp.int32)
        noise = jax.random.normal(jax.random.fold_in(key, i), x0.shape, x0.dtype)
        x_t = q_sample(rs, x0, index, noise)
        model_out = denoise_fn(x_t, jnp.full((batch,), taus[i], jnp.int32), cond)
        return None, vlb_term(rs, model_out, x0, x_t, index, prediction=prediction,
                              variance=variance, num_bins=num_bins, clip_x0=clip_x0)

    _, terms = jax.lax.scan(term, None, jnp.arange(rs.num_steps))
    return jnp.concatenate([terms, prior_kl(rs, x0)[None]], axis=0)


def _trace_fn(denoiser, trace: str, shape, dtype):
    r"""``(D(y), tr dD/dy)`` per example: Hutchinson with a fixed probe, or exact.

    Both use vector-Jacobian products, :math:`\epsilon^\top J \epsilon =
    (J^\top \epsilon)^\top \epsilon` (the models' attention is reverse-mode only); the
    per-example sums assume, as any per-example trace does, that the denoiser does not mix
    examples."""
    def per_example(a):
        return a.reshape(shape[0], -1).sum(axis=1)

    if trace == "exact":
        dims = math.prod(shape[1:])
        basis = jnp.eye(dims, dtype=dtype).reshape((dims,) + shape[1:])

        def exact(y, probe):
            del probe
            out, vjp_fn = jax.vjp(denoiser, y)

            def diagonal_entry(e):
                e = jnp.broadcast_to(e, y.shape)
                return per_example(vjp_fn(e)[0] * e)

            return out, jax.vmap(diagonal_entry)(basis).sum(axis=0)

        return exact

    def hutchinson(y, probe):
        out, vjp_fn = jax.vjp(denoiser, y)
        return out, per_example(vjp_fn(probe)[0] * probe)

    return hutchinson


def ode_nll(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array, *,
            prediction: str = "eps", variance: str = "beta", cond=None,
            num_steps: int | None = None, spacing: str = "uniform",
            trace: str = "hutchinson") -> jax.Array:
    r"""The probability-flow ODE's :math:`-\log p(x_0)` per example ``[B]``, in nats, for
    continuous data (see the module docstring); one ``lax.scan`` over ``num_steps - 1`` steps
    of two model calls each."""
    check_batch("x0", x0)
    check_prediction(prediction)
    check_choice("trace", trace, TRACES)
    rs, taus = _respaced(schedule, num_steps, spacing)
    batch = x0.shape[0]
    alphas, sigmas = alpha_sigma(rs, jnp.arange(rs.num_steps))

    def denoiser_at(i):
        def denoise(y):
            x_t = alphas[i] * y
            out = denoise_fn(x_t, jnp.full((batch,), taus[i], jnp.int32), cond)
            pred, _ = split_model_output(out, x_t, variance == "learned")
            x0_hat, _ = x0_eps_from_prediction(prediction, pred, x_t, alphas[i][None],
                                               sigmas[i][None])
            return x0_hat
        return denoise

    return _flow_nll(key, denoiser_at, alphas, -0.5 * rs.log_snrs, x0, trace=trace,
                     prior_std=1.0)


def path_ode_nll(key: jax.Array, denoise_fn, path: Path, x0: jax.Array, *,
                 prediction: str = "velocity", cond=None, num_steps: int = 100,
                 trace: str = "hutchinson") -> jax.Array:
    r""":func:`ode_nll` on a continuous :class:`~jaxdiff.gaussian.paths.Path`: the same
    integrator on ``num_steps`` levels even in :math:`\lambda` between the path's ends,
    clamped to EDM's :math:`\sigma_e \in [0.002, 80]` (the data sit at the cleanest level,
    the prior :math:`\mathcal N(0, \sigma^2 I)` is taken at the noisiest);
    ``denoise_fn(x_t, t, cond)`` takes the path's times."""
    check_batch("x0", x0)
    check_continuous_prediction(prediction)
    check_choice("trace", trace, TRACES)
    times = jnp.asarray(time_grid(path, num_steps, spacing="log_snr")[::-1].copy(), x0.dtype)
    alphas, sigmas = path.alpha_sigma(times)
    batch = x0.shape[0]

    def denoiser_at(i):
        def denoise(y):
            x_t = alphas[i] * y
            t = jnp.full((batch,), times[i], x0.dtype)
            return x0_eps_from_output(path, prediction, denoise_fn(x_t, t, cond), x_t, t)[0]
        return denoise

    return _flow_nll(key, denoiser_at, alphas, jnp.log(sigmas / alphas), x0, trace=trace,
                     prior_std=sigmas[-1])


def _flow_nll(key, denoiser_at, alphas, log_sigma_e, x0, *, trace: str, prior_std):
    r"""The module docstring's integral over the levels ``i`` (clean first): ``alphas`` and
    ``log_sigma_e`` ``[S]``, ``denoiser_at(i)(y) -> x0_hat``; the prior of ``alpha_S y_S``
    is :math:`\mathcal N(0, s^2 I)` with ``s = prior_std``."""
    batch, dims = x0.shape[0], math.prod(x0.shape[1:])
    probe = jax.random.rademacher(key, x0.shape, x0.dtype)

    def step(carry, i):
        y, integral = carry
        h = log_sigma_e[i + 1] - log_sigma_e[i]
        d_now, tr_now = _trace_fn(denoiser_at(i), trace, x0.shape, x0.dtype)(y, probe)
        y_pred = jnp.exp(h) * y - jnp.expm1(h) * d_now
        d_next, tr_next = _trace_fn(denoiser_at(i + 1), trace, x0.shape, x0.dtype)(y_pred, probe)
        # y(u + h) = e^h y - int_0^h e^(h-s) D(s) ds with D linear in s over the step.
        y_next = jnp.exp(h) * y - jnp.expm1(h) * d_now - (jnp.expm1(h) - h) / h * (d_next - d_now)
        return (y_next, integral + h * (dims - 0.5 * (tr_now + tr_next))), None

    (y_top, integral), _ = jax.lax.scan(step, (x0, jnp.zeros((batch,), x0.dtype)),
                                        jnp.arange(log_sigma_e.shape[0] - 1))
    x_top = alphas[-1] * y_top / prior_std
    log_prior = (-0.5 * (x_top**2).reshape(batch, -1).sum(axis=1)
                 - 0.5 * dims * math.log(2 * math.pi)
                 + dims * (jnp.log(alphas[-1]) - jnp.log(prior_std)))
    return -(log_prior + integral)


def nll_bits_per_dim(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array, *,
                     method: str = "vlb", prediction: str = "eps", variance: str = "beta",
                     num_bins: int | None = 256, cond=None, num_steps: int | None = None,
                     spacing: str = "uniform", trace: str = "hutchinson",
                     clip_x0: bool = False) -> jax.Array:
    r"""Negative log-likelihood per example ``[B]`` in bits per dimension.

    Args:
      key: PRNG key (noise draws of the bound; dequantization and probe of the ODE).
      denoise_fn: ``denoise_fn(x_t, t, cond) -> prediction``.
      schedule: the training schedule.
      x0: data ``[B, ...]``; on the grid of ``num_bins`` levels in [-1, 1] when discrete.
      method: ``vlb`` (an upper bound) or ``ode`` (exact up to solver and estimator error).
      prediction: ``eps``, ``x0`` or ``v``.
      variance: the reverse variance of the bound (``beta``, ``beta_tilde``, ``learned``).
      num_bins: data levels (256 for 8-bit images); None for continuous data (a density).
      cond: conditioning for ``denoise_fn``.
      num_steps: steps of the (respaced) chain or of the ODE grid; default ``T``.
      spacing: how those steps are chosen (``uniform``, ``log_snr``, ``karras``).
      trace: ``hutchinson`` or ``exact`` divergence for the ODE.
      clip_x0: the bound with :math:`\hat x_0` clipped to [-1, 1] in every reverse step
        (improved DDPM's estimator; :func:`~jaxdiff.gaussian.vlb_term`); ``vlb`` only.
    """
    check_choice("method", method, METHODS)
    if clip_x0 and method != "vlb":
        raise ValueError("clip_x0 is an option of the vlb method (the ODE has no reverse "
                         "step to clip)")
    check_batch("x0", x0)
    dims = math.prod(x0.shape[1:])
    if method == "vlb":
        nats = vlb_terms(key, denoise_fn, schedule, x0, prediction=prediction, variance=variance,
                         num_bins=num_bins, cond=cond, num_steps=num_steps, spacing=spacing,
                         clip_x0=clip_x0).sum(axis=0)
    else:
        key_dequant, key_probe = jax.random.split(key)
        x, log_width = _dequantized(key_dequant, x0, num_bins)
        nats = ode_nll(key_probe, denoise_fn, schedule, x, prediction=prediction,
                       variance=variance, cond=cond, num_steps=num_steps, spacing=spacing,
                       trace=trace) - log_width
    return nats / (dims * math.log(2.0))


def path_nll_bits_per_dim(key: jax.Array, denoise_fn, path: Path, x0: jax.Array, *,
                          prediction: str = "velocity", num_bins: int | None = 256, cond=None,
                          num_steps: int = 100, trace: str = "hutchinson") -> jax.Array:
    """:func:`path_ode_nll` per example ``[B]`` in bits per dimension, with the
    dequantization of :func:`nll_bits_per_dim` for data on ``num_bins`` levels."""
    check_batch("x0", x0)
    key_dequant, key_probe = jax.random.split(key)
    x, log_width = _dequantized(key_dequant, x0, num_bins)
    nats = path_ode_nll(key_probe, denoise_fn, path, x, prediction=prediction, cond=cond,
                        num_steps=num_steps, trace=trace) - log_width
    return nats / (math.prod(x0.shape[1:]) * math.log(2.0))


def _dequantized(key, x0, num_bins: int | None):
    """``(x, log_volume)``: ``x0`` uniformly dequantized in its bin of width
    ``2 / (num_bins - 1)`` and the log volume of the bin (0 for continuous data)."""
    if num_bins is None:
        return x0, 0.0
    width = 2.0 / (num_bins - 1)
    x = x0 + width * (jax.random.uniform(key, x0.shape, x0.dtype) - 0.5)
    return x, math.prod(x0.shape[1:]) * math.log(width)
