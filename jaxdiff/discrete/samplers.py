r"""The D3PM sampler, one ``lax.scan``, ``jit``-able end to end: ancestral sampling over all
``T`` steps or a strided subset (:func:`d3pm_sample`). The masked-model samplers (MDLM /
MD4's ancestral one, ReMDM, LLaDA's) are :mod:`jaxdiff.discrete.unmasking`.

Every discrete sampler takes ``inpaint_mask`` / ``inpaint_values``: the known tokens are
clamped in the initial state and after every step, so they are never changed and the
denoiser sees them clean at every step (for absorbing / masked processes this is exact
conditioning: a known token is an unmasked one). Step ``i`` draws with ``fold_in(key, i)``.

``float64=True`` makes every categorical draw (weights, cumulative sum, uniforms) float64. It
needs JAX's 64-bit mode, which must be on while the sampler is traced::

    with jax.enable_x64(True):
        x = jax.jit(lambda k: masked_sample(k, fn, process, (B, L), num_steps=K,
                                            float64=True))(key)

and a ``RuntimeError`` is raised otherwise (no silent float32 fallback).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import (
    call_denoiser,
    check_cond,
    check_float64,
    check_inpaint,
    check_int,
    check_sequence_shape,
)
from jaxdiff.discrete.distributions import categorical, log_softmax_excluding
from jaxdiff.discrete.transitions import (
    D3PMProcess,
    check_d3pm_process,
    draw_stationary,
    reverse_log_probs,
)


def d3pm_step_counts(num_train_steps: int, num_steps: int) -> np.ndarray:
    """The visited step counts ``T = k_0 > k_1 > ... > k_S = 0`` of a strided sampler.

    Evenly spaced and rounded half up, so they are strictly decreasing whenever
    ``num_steps <= num_train_steps``; ``num_steps = T`` visits every step.
    """
    grid = np.linspace(num_train_steps, 0, num_steps + 1)
    return np.floor(grid + 0.5).astype(np.int32)


def _clamp_known(x, inpaint_mask, inpaint_values) -> jax.Array:
    """Known positions (``inpaint_mask``) take ``inpaint_values``; others keep ``x``."""
    if inpaint_mask is None:
        return x
    return jnp.where(inpaint_mask, inpaint_values, x)


def _check_sampling(shape, cond, float64: bool) -> tuple[int, int]:
    """The checks every sampler makes: ``(B, L)`` from ``shape``, batch-first ``cond``, and
    64-bit mode when ``float64``."""
    batch, length = check_sequence_shape(shape)
    check_cond(cond, batch)
    check_float64(float64)
    return batch, length


def d3pm_sample(key, denoise_fn, process: D3PMProcess, shape, *, num_steps: int | None = None,
                cond=None, float64: bool = False, inpaint_mask=None,
                inpaint_values=None) -> jax.Array:
    r"""Ancestral D3PM sampling from the prior :math:`x_T \sim \pi` down to :math:`x_0`.

    Each step from step count :math:`k` to :math:`s < k` draws from D3PM's x0-parameterisation
    with the skip matrix :math:`Q_{k|s}` (:math:`s = k-1` when every step is visited):

    .. math::
        x_s \sim p_\theta(x_s | x_k) \propto Q_{k|s}[x_s, x_k]\,
        \big(\bar\alpha_s \tilde p_\theta(\cdot | x_k) + (1-\bar\alpha_s)\pi\big)[x_s],

    calling ``denoise_fn(x_k, k - 1, cond)`` (the index convention of
    :mod:`jaxdiff.discrete.transitions`). The last step (:math:`s = 0`) is the decoder.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> x0 logits [B, L, V]``, ``t`` int32 [B].
      process: the forward process.
      shape: ``(B, L)`` (static).
      num_steps: number of reverse steps ``S`` in ``[1, T]`` (static); default ``T``.
      cond: conditioning for ``denoise_fn`` (batch first).
      float64: draw the categoricals in float64 (needs 64-bit mode, see the module doc).
      inpaint_mask: ``bool [B, L]``, True where the token is known.
      inpaint_values: ``int [B, L]`` known tokens (read where ``inpaint_mask``).

    Returns:
      ``int32 [B, L]`` token ids.
    """
    check_d3pm_process(process)
    batch, length = _check_sampling(shape, cond, float64)
    num_train = process.num_steps
    num_steps = num_train if num_steps is None else num_steps
    num_steps = check_int("num_steps", num_steps)
    if num_steps > num_train:
        raise ValueError(f"num_steps must be <= the process's T = {num_train}, got {num_steps}")
    known, values = check_inpaint(inpaint_mask, inpaint_values, (batch, length),
                                  process.vocab_size, process.mask_id)
    counts = d3pm_step_counts(num_train, num_steps)
    key_init, key_steps = jax.random.split(key)
    x_init = _clamp_known(draw_stationary(key_init, process, (batch, length)), known, values)

    def step(x, inputs):
        i, k_from, k_to = inputs
        k_from_b = jnp.full((batch,), k_from, jnp.int32)
        logits = call_denoiser(denoise_fn, x, k_from_b - 1, cond, process.vocab_size)
        log_p = reverse_log_probs(process, log_softmax_excluding(logits, process.mask_id), x,
                                  k_from_b, jnp.full((batch,), k_to, jnp.int32))
        x = categorical(jax.random.fold_in(key_steps, i), log_p, float64=float64)
        return _clamp_known(x, known, values), None

    xs = (jnp.arange(num_steps, dtype=jnp.int32), jnp.asarray(counts[:-1]),
          jnp.asarray(counts[1:]))
    x, _ = jax.lax.scan(step, x_init, xs)
    return x
