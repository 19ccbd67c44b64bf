r"""The autoregressive (left-to-right) baseline as pure functions; no Flax.

Every function talks to a causal ``logits_fn(inputs) -> logits``: ``int32 [B, L]`` ids in,
``float32 [B, L, V]`` out, row ``i`` depending only on ``inputs[:, :i + 1]`` (e.g.
``lambda x: apply_fn(params, x, None)`` for a causal ``TextTransformer`` with
``time_conditioning=False``). The cached sampler talks instead to a one-token decoder
``decode_fn(tokens [B], state) -> (logits [B, V], state)`` (``TextTransformer.decode_step``
with ``state = model.init_cache(B)``).

**BOS convention.** The model reads ``[BOS] + x[:-1]`` (:func:`shift_right`) and row ``i``
of its output predicts ``x_i``. ``bos_id`` is an input-only id: its logit is removed
(:math:`-\infty`) from every predictive distribution, so it is never a target and never
sampled. With :class:`jaxdiff.discrete.text.CharTokenizer`, use ``bos_id =
tokenizer.mask_id`` (27): the causal model then shares ``vocab_size = 28`` with the
diffusion models and predicts over the 27 real characters.

.. math::
    -\log p(x) = -\sum_{i=0}^{L-1} \log p(x_i \mid \mathrm{BOS}, x_{<i}),\qquad
    \mathrm{bpc} = \frac{-\log p(x)}{L \ln 2}

(bits per character: :func:`jaxdiff.bits_per_unit` of :func:`sequence_nll` and ``L``).

Samplers are one ``lax.scan`` over positions with per-step keys
``jax.random.fold_in(key, i)``, so the cached and uncached samplers draw the same ids from
the same key. ``float64=True`` draws the categoricals in float64 (needs 64-bit mode, as in
:mod:`jaxdiff.discrete.samplers`). Inpainting (``inpaint_mask`` / :func:`ar_inpaint_text`) is
the AR infilling baseline: known positions are forced, unknown ones are sampled from the
left context only.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import (
    check_float64,
    check_inpaint,
    check_int,
    check_sequence_shape,
    check_tokens,
)
from jaxdiff.discrete.distributions import (
    categorical,
    check_temperature,
    log_softmax_excluding,
)
from jaxdiff.discrete.text import CharTokenizer, expand_template

LogitsFn = Callable[[jax.Array], jax.Array]
DecodeFn = Callable[[jax.Array, Any], tuple[jax.Array, Any]]


def _check_bos(bos_id, vocab_size: int) -> int:
    if isinstance(bos_id, bool) or not isinstance(bos_id, int | np.integer) or not (
            0 <= bos_id < vocab_size):
        raise ValueError(f"bos_id must be an int in [0, vocab_size={vocab_size}), "
                         f"got {bos_id!r}")
    return int(bos_id)


def shift_right(tokens: jax.Array, *, bos_id: int) -> jax.Array:
    """The teacher-forcing inputs ``[BOS] + tokens[:, :-1]``, ``int32 [B, L]``."""
    if getattr(tokens, "ndim", None) != 2:
        raise ValueError(f"tokens must have shape [B, L], got {getattr(tokens, 'shape', None)}")
    bos = jnp.full((tokens.shape[0], 1), bos_id, jnp.int32)
    return jnp.concatenate([bos, tokens[:, :-1].astype(jnp.int32)], axis=1)


def _teacher_forced_logits(logits_fn: LogitsFn, tokens, bos_id: int) -> jax.Array:
    if getattr(tokens, "ndim", None) != 2:
        raise ValueError(f"tokens must have shape [B, L], got {getattr(tokens, 'shape', None)}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
    logits = logits_fn(shift_right(tokens, bos_id=bos_id))
    batch, length = tokens.shape
    if getattr(logits, "ndim", None) != 3 or logits.shape[:2] != (batch, length):
        raise ValueError(f"logits_fn output must have shape [B, L, V] with (B, L) = "
                         f"{(batch, length)}, got {getattr(logits, 'shape', None)}")
    vocab_size = logits.shape[-1]
    _check_bos(bos_id, vocab_size)
    check_tokens("tokens", tokens, vocab_size, mask_id=bos_id)
    return logits


def token_log_probs(logits_fn: LogitsFn, tokens: jax.Array, *, bos_id: int) -> jax.Array:
    r""":math:`\log p(x_i \mid \mathrm{BOS}, x_{<i})` for every position, ``float32 [B, L]``.

    Args:
      logits_fn: causal ``inputs [B, L] -> logits [B, L, V]``.
      tokens: ``int [B, L]`` ids in ``[0, V)``, never ``bos_id``.
      bos_id: the begin-of-sequence id (module doc).
    """
    logits = _teacher_forced_logits(logits_fn, tokens, bos_id)
    log_probs = log_softmax_excluding(logits.astype(jnp.float32), bos_id)
    return jnp.take_along_axis(log_probs, tokens.astype(jnp.int32)[..., None], axis=-1)[..., 0]


def sequence_nll(logits_fn: LogitsFn, tokens: jax.Array, *, bos_id: int) -> jax.Array:
    r"""Exact negative log-likelihood in nats per sequence, ``float32 [B]``:
    :math:`-\sum_i \log p(x_i \mid \mathrm{BOS}, x_{<i})`."""
    return -jnp.sum(token_log_probs(logits_fn, tokens, bos_id=bos_id), axis=-1)


def generative_perplexity(logits_fn: LogitsFn, samples: jax.Array, *, bos_id: int) -> jax.Array:
    r"""Perplexity of generated ``samples [B, L]`` under an AR model (the usual sample-quality
    score of text diffusion, e.g. MDLM): :math:`\exp(\sum_b \mathcal L_b / (B L))` with
    :math:`\mathcal L_b` the model's exact NLL of sample :math:`b` in nats."""
    return jnp.exp(jnp.mean(sequence_nll(logits_fn, samples, bos_id=bos_id))
                   / samples.shape[-1])


def ar_loss(logits_fn: LogitsFn, tokens: jax.Array, *, bos_id: int) -> jax.Array:
    """The training loss: mean cross-entropy in nats per token (scalar, float32).

    Equals ``mean(sequence_nll) / L``; ``jaxdiff.bits_per_unit(loss, 1)`` is the bpc.
    """
    return -jnp.mean(token_log_probs(logits_fn, tokens, bos_id=bos_id))


def _token_drawer(key, shape: tuple[int, int], vocab_size: int, *, bos_id, temperature,
                  float64, inpaint_mask, inpaint_values):
    """Checks the sampling options and returns ``draw(logits [B, V], i) -> int32 [B]``: token
    ``i`` drawn with key ``fold_in(key, i)`` (BOS excluded, logits divided by the
    temperature), or its known value where ``inpaint_mask[:, i]``."""
    temperature = check_temperature(temperature)
    check_float64(float64)
    _check_bos(bos_id, vocab_size)
    inpaint_mask, inpaint_values = check_inpaint(inpaint_mask, inpaint_values, shape,
                                                 vocab_size, bos_id)

    def draw(logits, i):
        if logits.shape != (shape[0], vocab_size):
            raise ValueError(f"next-token logits must have shape [B, V] = "
                             f"{(shape[0], vocab_size)}, got {logits.shape}")
        log_probs = log_softmax_excluding(logits.astype(jnp.float32), bos_id) / temperature
        token = categorical(jax.random.fold_in(key, i), log_probs, float64=float64)
        if inpaint_mask is not None:
            token = jnp.where(inpaint_mask[:, i], inpaint_values[:, i], token)
        return token

    return draw


def ar_sample(key, logits_fn: LogitsFn, shape: tuple[int, int], *, bos_id: int,
              temperature: float = 1.0, float64: bool = False, inpaint_mask=None,
              inpaint_values=None) -> jax.Array:
    """Left-to-right ancestral sampling without a cache, one ``lax.scan`` over positions.

    Step ``i`` runs ``logits_fn`` on the whole fixed-length buffer ``[BOS] + x[:-1]``
    (positions ``>= i`` hold ``bos_id`` padding, which a causal model ignores for row
    ``i``) and draws ``x_i``: ``O(L^2)`` work, for any causal ``logits_fn``. Use
    :func:`ar_sample_cached` with a KV cache when the model has a decode step.

    Args:
      key: PRNG key; step ``i`` uses ``fold_in(key, i)``.
      logits_fn: causal ``inputs [B, L] -> logits [B, L, V]``.
      shape: ``(B, L)``.
      bos_id: the begin-of-sequence id, never sampled.
      temperature: divides the log-probabilities (``< 1`` sharpens).
      float64: categorical draws in float64 (needs 64-bit mode).
      inpaint_mask, inpaint_values: optional ``[B, L]`` bool / ids; known positions take their
        value instead of a draw (left-context inpainting).

    Returns:
      ``int32 [B, L]`` ids in ``[0, V)``, never ``bos_id``.
    """
    batch, length = check_sequence_shape(shape)
    buffer = jnp.full((batch, length), bos_id, jnp.int32)
    out_shape = jax.eval_shape(logits_fn, buffer).shape
    if len(out_shape) != 3 or out_shape[:2] != (batch, length):
        raise ValueError(f"logits_fn output must have shape [B, L, V] with (B, L) = "
                         f"{(batch, length)}, got {out_shape}")
    draw = _token_drawer(key, (batch, length), out_shape[2], bos_id=bos_id,
                         temperature=temperature, float64=float64, inpaint_mask=inpaint_mask,
                         inpaint_values=inpaint_values)

    def step(x, i):
        logits = jax.lax.dynamic_index_in_dim(logits_fn(shift_right(x, bos_id=bos_id)), i,
                                              axis=1, keepdims=False)
        token = draw(logits, i)
        return jax.lax.dynamic_update_index_in_dim(x, token, i, axis=1), None

    x, _ = jax.lax.scan(step, buffer, jnp.arange(length, dtype=jnp.int32))
    return x


def ar_sample_cached(key, decode_fn: DecodeFn, state, shape: tuple[int, int], *,
                     bos_id: int, temperature: float = 1.0, float64: bool = False,
                     inpaint_mask=None, inpaint_values=None) -> jax.Array:
    """Left-to-right sampling with a decode step (KV cache), one ``lax.scan``: ``O(L)``.

    Step ``i`` feeds the previous token (``bos_id`` at ``i = 0``) to
    ``decode_fn(tokens [B], state) -> (logits [B, V], state)`` and draws ``x_i`` with key
    ``fold_in(key, i)``, so it returns the same ids as :func:`ar_sample` when
    ``decode_fn`` matches the causal ``logits_fn`` row by row.

    Args:
      key: PRNG key.
      decode_fn: e.g. ``model.decode_step`` of a causal ``TextTransformer``.
      state: the empty decode state, e.g. ``model.init_cache(B)`` (its ``max_length`` must
        be ``>= L``; decoding past it is not detected under ``jit``).
      shape, bos_id, temperature, float64, inpaint_mask, inpaint_values: as in
        :func:`ar_sample`.

    Returns:
      ``int32 [B, L]`` ids.
    """
    batch, length = check_sequence_shape(shape)
    first = jnp.full((batch,), bos_id, jnp.int32)
    out_shape = jax.eval_shape(decode_fn, first, state)[0].shape
    if len(out_shape) != 2 or out_shape[0] != batch:
        raise ValueError(f"decode_fn must return logits of shape [B, V] with B = {batch}, "
                         f"got {out_shape}")
    draw = _token_drawer(key, (batch, length), out_shape[1], bos_id=bos_id,
                         temperature=temperature, float64=float64, inpaint_mask=inpaint_mask,
                         inpaint_values=inpaint_values)

    def step(carry, i):
        previous, state = carry
        logits, state = decode_fn(previous, state)
        token = draw(logits, i)
        return (token, state), token

    _, tokens_LxB = jax.lax.scan(step, (first, state), jnp.arange(length, dtype=jnp.int32))
    return tokens_LxB.T


def ar_inpaint_text(key, logits_fn: LogitsFn, template: str, *,
                    mask_length: int | Sequence[int], num_samples: int = 1,
                    tokenizer: CharTokenizer | None = None, temperature: float = 1.0,
                    float64: bool = False) -> list[str]:
    """The AR infilling baseline: fills the ``[MASK]`` spans of ``template`` left to right.

    Each span character is sampled from the left context only (the template's known
    characters before it and the characters already drawn); known characters are kept
    exactly. ``bos_id`` is ``tokenizer.mask_id``, so ``logits_fn`` must have
    ``V = tokenizer.vocab_size``. Uses :func:`ar_sample` (no cache).

    Args:
      key: PRNG key.
      logits_fn: causal ``inputs [B, L] -> logits [B, L, V]``.
      template: e.g. ``"the [MASK] sat on the [MASK]"``.
      mask_length: characters per span: an int, or one per span.
      num_samples: completions (the batch size).
      tokenizer: default :class:`CharTokenizer` (text8).
      temperature, float64: as in :func:`ar_sample`.

    Returns:
      ``num_samples`` strings as long as the expanded template.
    """
    tokenizer = CharTokenizer() if tokenizer is None else tokenizer
    num_samples = check_int("num_samples", num_samples)
    ids = expand_template(template, mask_length, tokenizer)
    if ids.size == 0:
        raise ValueError("template is empty")
    values = np.tile(ids, (num_samples, 1))
    known = values != tokenizer.mask_id
    out = ar_sample(key, logits_fn, values.shape, bos_id=tokenizer.mask_id,
                    temperature=temperature, float64=float64, inpaint_mask=jnp.asarray(known),
                    inpaint_values=jnp.asarray(np.where(known, values, 0)))
    return [tokenizer.decode(row) for row in np.asarray(out)]
