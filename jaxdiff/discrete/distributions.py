r"""Categorical distributions over token ids, shared by the discrete-diffusion samplers and the
autoregressive baseline: log-probabilities with an excluded id, temperature and nucleus
truncation, and inverse-CDF draws."""

import math

import jax
import jax.numpy as jnp


def log_softmax_excluding(logits, excluded_id: int | None) -> jax.Array:
    r"""Normalised log-probabilities over the last axis with id :math:`e` = ``excluded_id``
    given probability 0 (a plain log-softmax when ``excluded_id`` is None):

    .. math:: \log p_v = \ell_v - \log\sum_{v' \ne e} e^{\ell_{v'}}\ \ (v \ne e),
        \qquad \log p_e = -\infty.

    For ids that are never a target: ``[MASK]`` in the x0 prediction of absorbing and masked
    diffusion (clean data never hold it; MDLM's "zero masking probabilities"), BOS in an
    autoregressive model.

    Args:
      logits: ``float [..., V]``.
      excluded_id: the id in ``[0, V)`` to exclude, or None.

    Returns:
      ``[..., V]`` in the dtype of ``logits``.
    """
    if excluded_id is not None:
        logits = jnp.where(jnp.arange(logits.shape[-1]) == excluded_id, -jnp.inf, logits)
    return jax.nn.log_softmax(logits, axis=-1)


def categorical(key, log_probs, *, float64: bool) -> jax.Array:
    r"""One draw per row of ``log_probs [..., V]`` (log-probabilities up to a constant per row;
    ``-inf`` = impossible), as int32 ids, by inverting the row's cumulative distribution:

    .. math:: x = \min\{v : w_v > 0,\ F_v \ge u \max_{w_{v'} > 0} F_{v'}\},\quad
        F_v = \sum_{v' \le v} w_{v'},\ w_v = e^{\ell_v - \max \ell},
        \ u \sim \mathcal U(0, 1]

    One uniform per row, where Gumbel-max needs ``V`` uniforms and ``2V`` logarithms: 4x faster
    for the text samplers' ``[32, 256, 257]`` draws on 2 CPU cores (8 vs 34 ms). Only tokens with
    ``w_v > 0`` can be drawn, however the cumulative sum rounds. With ``float64`` the weights,
    their cumulative sum and the uniforms are float64 (Zheng et al. 2024 show that float32
    categorical sampling -- Gumbel noise there -- lowers the diversity of masked-diffusion
    text); it needs JAX's 64-bit mode, which callers check first
    (``jaxdiff._validation.check_float64``).
    """
    dtype = jnp.float64 if float64 else jnp.float32
    log_probs = log_probs.astype(dtype)
    weights = jnp.exp(log_probs - jnp.max(log_probs, axis=-1, keepdims=True))
    cdf = jnp.cumsum(weights, axis=-1)
    possible = weights > 0
    total = jnp.max(jnp.where(possible, cdf, 0), axis=-1, keepdims=True)
    u = 1 - jax.random.uniform(key, log_probs.shape[:-1] + (1,), dtype)  # (0, 1]
    return jnp.argmax(possible & (cdf >= u * total), axis=-1).astype(jnp.int32)


def check_top_p(top_p) -> float:
    """``top_p`` as a float in ``(0, 1]``, or a ``ValueError`` naming it."""
    if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a float in (0, 1], got {top_p!r}")
    return float(top_p)


def check_temperature(temperature) -> float:
    """``temperature`` as a finite float > 0, or a ``ValueError`` naming it."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not (
            temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")
    return float(temperature)


def nucleus(log_probs, top_p: float) -> jax.Array:
    r"""Nucleus (top-p) truncation (Holtzman et al. 2020): keeps the most probable ids up to
    and including the first whose cumulative probability reaches ``top_p``, renormalised;
    the rest get :math:`-\infty`:

    .. math:: \tilde p_v \propto p_v\,\mathbb 1\Big[\sum_{v':\, p_{v'} > p_v} p_{v'} < p\Big]

    (ties broken by id). ``top_p = 1`` returns ``log_probs`` unchanged. (BD3-LM's and
    ReMDM's code keep the ids whose cumulative mass is at most ``top_p``, plus the first:
    one id fewer whenever the mass does not land exactly on ``top_p``.)

    Args:
      log_probs: normalised ``float [..., V]`` log-probabilities.
      top_p: :math:`p \in (0, 1]` (:func:`check_top_p`).
    """
    if top_p >= 1.0:
        return log_probs
    order = jnp.argsort(-log_probs, axis=-1, stable=True)
    sorted_probs = jnp.exp(jnp.take_along_axis(log_probs, order, axis=-1))
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < top_p
    keep = jnp.put_along_axis(jnp.zeros_like(keep_sorted), order, keep_sorted, axis=-1,
                              inplace=False)
    return jax.nn.log_softmax(jnp.where(keep, log_probs, -jnp.inf), axis=-1)


def x0_log_probs(logits, excluded_id: int | None, *, temperature: float = 1.0,
                 top_p: float = 1.0) -> jax.Array:
    r"""The sampling distribution of a denoiser's x0 prediction: the log-softmax without
    ``excluded_id`` (:func:`log_softmax_excluding`) of ``logits / temperature``, truncated
    to its nucleus ``top_p`` (:func:`nucleus`); float32."""
    scaled = logits.astype(jnp.float32) / temperature
    return nucleus(log_softmax_excluding(scaled, excluded_id), top_p)
