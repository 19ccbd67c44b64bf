r"""Classifier-free guidance for discrete diffusion, on the denoiser's x0 logits.

A label-conditioned denoiser trained with label dropout (Ho & Salimans 2022) predicts both
:math:`p_\theta(x_0 \mid z_t, y)` and, with the null label, :math:`p_\theta(x_0 \mid z_t)`.
Guidance at strength :math:`w` samples every position from the tilted prediction

.. math::

    p_w(x_0^\ell \mid z_t, y) \propto p_\theta(x_0^\ell \mid z_t, y)^{1 + w}\,
    p_\theta(x_0^\ell \mid z_t)^{-w},

i.e. the logits :math:`(1 + w) \log p_c - w \log p_u`, renormalised over the vocabulary: the
log-linear interpolation of discrete guidance (Nisonoff et al. 2024, "Unlocking Guidance for
Discrete State-Space Diffusion and Flow Models"; Schiff et al. 2024, "Simple Guidance
Mechanisms for Discrete Diffusion Models", D-CFG with :math:`\gamma = 1 + w`). :math:`w = 0`
is conditional sampling, :math:`w = -1` unconditional sampling. Tilting the x0 prediction
leaves every sampler as it is (D3PM, masked diffusion and its remasking samplers, block
diffusion): each forms its reverse step from the guided prediction. (Schiff et al. tilt the
reverse transition :math:`p(z_s \mid z_t)` itself; for masked diffusion that differs from
this only in how fast masked positions unmask -- the tilted transition's normaliser
:math:`\sum_x p_c^{1+w} p_u^{-w} \ge 1` speeds unmasking up -- not in which token a position
takes.) A token impossible under either branch stays impossible.

The conditional and unconditional branches run as one batch of :math:`2B` rows (the
conditional rows first), so guided sampling costs one network call per step, and a block
model's KV cache holds :math:`2B` rows (each branch its own keys and values).
"""

import math

import jax
import jax.numpy as jnp


def _check_scale(guidance_scale) -> float:
    if (isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float)
            or not math.isfinite(guidance_scale)):
        raise ValueError(f"guidance_scale must be a finite number w (0: conditional "
                         f"sampling), got {guidance_scale!r}")
    return float(guidance_scale)


def guided_log_probs(cond_logits: jax.Array, null_logits: jax.Array,
                     guidance_scale: float) -> jax.Array:
    r"""Log-probabilities :math:`\log \mathrm{softmax}((1 + w) \log p_c - w \log p_u)` over the
    last axis (see the module doc); ``-inf`` where either branch gives ``-inf``."""
    w = _check_scale(guidance_scale)
    log_c = jax.nn.log_softmax(cond_logits.astype(jnp.float32), axis=-1)
    log_u = jax.nn.log_softmax(null_logits.astype(jnp.float32), axis=-1)
    impossible = jnp.isneginf(log_c) | jnp.isneginf(log_u)
    tilted = jnp.where(impossible, -jnp.inf,
                       (1.0 + w) * jnp.where(impossible, 0.0, log_c)
                       - w * jnp.where(impossible, 0.0, log_u))
    return jax.nn.log_softmax(tilted, axis=-1)


def _both(cond, null_cond):
    if cond is None or null_cond is None:
        raise ValueError("guidance_scale needs a label-conditioned model: cond and null_cond "
                         "(the null label) must both be given")
    return jax.tree.map(lambda c, n: jnp.concatenate([c, n]), cond, null_cond)


def _split_guided(logits: jax.Array, guidance_scale: float) -> jax.Array:
    cond_logits, null_logits = jnp.split(logits, 2)
    return guided_log_probs(cond_logits, null_logits, guidance_scale)


def guided_denoiser(denoise_fn, cond, *, guidance_scale: float | None, null_cond):
    """``fn(z_t, t, cond=None) -> x0 logits [B, L, V]`` for any text sampler: ``denoise_fn``
    with ``cond`` bound and, given ``guidance_scale``, the guided prediction
    (:func:`guided_log_probs`) from one call on ``2B`` rows. The sampler's own ``cond`` must
    be None (the condition is bound here)."""
    if guidance_scale is None:
        def conditional(z_t, t, sampler_cond=None):
            _no_second_condition(sampler_cond)
            return denoise_fn(z_t, t, cond)

        return conditional
    _check_scale(guidance_scale)
    both = _both(cond, null_cond)

    def guided(z_t, t, sampler_cond=None):
        _no_second_condition(sampler_cond)
        twice_t = None if t is None else jnp.concatenate([t, t])
        return _split_guided(denoise_fn(jnp.concatenate([z_t, z_t]), twice_t, both),
                             guidance_scale)

    return guided


def guided_decoder(decode_fn, cond, *, guidance_scale: float | None, null_cond):
    """``fn(block, state) -> (logits [B, k, V], state)`` for :func:`jaxdiff.discrete.block_sample`
    from ``decode_fn(block, state, cond)``: ``cond`` bound and, given ``guidance_scale``, the
    guided prediction from one call on ``2B`` rows -- the state (a KV cache) must then hold
    ``2B`` rows, the conditional branch's first."""
    if guidance_scale is None:
        return lambda block, state: decode_fn(block, state, cond)
    _check_scale(guidance_scale)
    both = _both(cond, null_cond)

    def guided(block, state):
        logits, state = decode_fn(jnp.concatenate([block, block]), state, both)
        return _split_guided(logits, guidance_scale), state

    return guided


def _no_second_condition(cond) -> None:
    if cond is not None:
        raise ValueError("the guided denoiser has its condition bound; the sampler's cond "
                         "must be None")
