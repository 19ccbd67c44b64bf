r"""Block diffusion (Arriola et al. 2025, "Block Diffusion: Interpolating Between Autoregressive
and Diffusion Language Models", BD3-LM): autoregressive over blocks of :math:`k` tokens,
masked diffusion within each block.

A sequence :math:`x` of :math:`N = Bk` tokens factorises over its blocks
:math:`x^1, \dots, x^B`, and each block's conditional is a masked diffusion
(:mod:`jaxdiff.discrete.masking`) given the clean blocks before it:

.. math:: -\log p_\theta(x) = -\sum_b \log p_\theta(x^b | x^{<b}) \le \sum_b
    \int_0^1 \frac{-\alpha_t'}{1 - \alpha_t}\, \mathbb E_{q(z_t^b | x^b)}
    \Big[\sum_{\ell \in b:\, z_t^\ell = m} -\log \tilde p_\theta(x^\ell | z_t^b, x^{<b})\Big]
    \mathrm dt.

Block size :math:`k = 1` makes each term exact (one token is masked or not, and
:math:`\mathbb E = -\log p_\theta(x^b | x^{<b})` for every :math:`t`): the autoregressive NLL.
Block size :math:`k = N` is the masked-diffusion ELBO. Each block draws its own time (BD3-LM).

**The denoiser.** Every block's conditional comes out of one call (BD3-LM's vectorised
training): ``denoise_fn(TwoStream(z_t, x), None, cond) -> logits [B, N, V]``, where the rows of
block :math:`b` may depend on :math:`z_t^b` and :math:`x^{<b}` only -- a block
``TextTransformer`` (``jaxdiff.models.TwoStream``). No time is passed: BD3-LM's denoiser is
not time-conditioned (a masked denoiser needs no time, MDLM), which is also what makes the
sampler's skip of unchanged steps exact.

**Sampling** (:func:`block_sample`) goes block by block: a block starts all ``[MASK]`` and is
unmasked in ``num_steps`` masked-diffusion steps by
``decode_fn(block [B, k], state) -> (logits [B, k, V], state with the block)``, whose first
output depends on the finished blocks through ``state`` only; the state returned for the
final block is kept. ``TextTransformer.decode_block`` with its KV cache is one such decoder
(``jaxdiff.models.functional.make_decode_fns``); :func:`uncached_block_decoder` builds the
other from any block-causal ``logits_fn`` by rerunning the whole buffer.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdiff._validation import (
    check_choice,
    check_cond,
    check_float64,
    check_inpaint,
    check_int,
    check_logits,
    check_sequence_shape,
    check_tokens,
)
from jaxdiff.discrete.distributions import check_temperature, check_top_p, log_softmax_excluding
from jaxdiff.discrete.masking import (
    MASKING_SCHEDULES,
    MaskedProcess,
    mask_probability,
    masked_process,
    masking_weight,
)
from jaxdiff.discrete.unmasking import masked_sample


@functools.partial(jax.tree_util.register_dataclass, data_fields=[],
                   meta_fields=["masked", "block_size"])
@dataclasses.dataclass(frozen=True)
class BlockProcess:
    """Block diffusion: a masked process within blocks of ``block_size`` tokens (static).

    Attributes:
      masked: the within-block :class:`~jaxdiff.discrete.masking.MaskedProcess`.
      block_size: :math:`k`, tokens per block.
    """

    masked: MaskedProcess
    block_size: int

    @property
    def mask_id(self) -> int:
        return self.masked.mask_id

    @property
    def vocab_size(self) -> int:
        return self.masked.vocab_size


def block_process(schedule: str = "loglinear", *, vocab_size: int, mask_id: int,
                  block_size: int) -> BlockProcess:
    """Builds a :class:`BlockProcess`.

    Args:
      schedule: the masking schedule within a block (``loglinear`` or ``cosine``).
      vocab_size: ``V``, ``[MASK]`` included.
      mask_id: the ``[MASK]`` id.
      block_size: :math:`k >= 1`.
    """
    check_choice("schedule", schedule, MASKING_SCHEDULES)
    return BlockProcess(masked=masked_process(schedule, vocab_size=vocab_size, mask_id=mask_id),
                        block_size=check_int("block_size", block_size))


def check_block_process(process) -> None:
    """Raises ``TypeError`` unless ``process`` is a :class:`BlockProcess`."""
    if not isinstance(process, BlockProcess):
        raise TypeError(f"process must be a BlockProcess (see block_process), "
                        f"got {type(process).__name__}")


def num_blocks(process: BlockProcess, length: int) -> int:
    """``length // block_size``, or a ``ValueError`` when the block size does not divide it."""
    if length % process.block_size:
        raise ValueError(f"block_size={process.block_size} must divide the sequence length "
                         f"{length}")
    return length // process.block_size


def block_times(key, batch: int, blocks: int, *, antithetic: bool) -> jax.Array:
    r"""``float32 [B, blocks]`` times in :math:`(0, 1]`, one per block: i.i.d. uniform, or
    with ``antithetic`` a shifted grid over all :math:`n = B \cdot` ``blocks`` times,
    :math:`1 - ((u + i / n) \bmod 1)` with one shared :math:`u` (MDLM's grid; BD3-LM jitters
    each grid point by its own :math:`u_i / n`; both are marginally uniform)."""
    if antithetic:
        count = batch * blocks
        u = jax.random.uniform(key, (), jnp.float32)
        grid = jnp.arange(count, dtype=jnp.float32) / count
        return (1.0 - jnp.mod(u + grid, 1.0)).reshape(batch, blocks)
    return 1.0 - jax.random.uniform(key, (batch, blocks), jnp.float32)


def _per_token(process: BlockProcess, t_blocks) -> jax.Array:
    """Block times ``[B, blocks]`` repeated over each block's tokens, ``[B, N]``."""
    return jnp.repeat(t_blocks, process.block_size, axis=1)


def block_q_sample(key, process: BlockProcess, x0, t_blocks) -> jax.Array:
    r"""Draws :math:`z_t`: each token of block :math:`b` becomes ``[MASK]`` with probability
    :math:`1 - \alpha_{t_b}`, independently.

    Args:
      key: PRNG key.
      process: the block process.
      x0: clean ids ``int [B, N]`` (no ``[MASK]``).
      t_blocks: ``float32 [B, N / k]`` block times in ``[0, 1]``.

    Returns:
      ``int32 [B, N]``.
    """
    check_block_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    _check_block_times(process, t_blocks, x0.shape)
    probability = mask_probability(process.masked, _per_token(process, t_blocks))
    masked = jax.random.uniform(key, x0.shape) < probability
    return jnp.where(masked, process.mask_id, x0).astype(jnp.int32)


def _check_block_times(process: BlockProcess, t_blocks, shape) -> None:
    want = (shape[0], num_blocks(process, shape[1]))
    if getattr(t_blocks, "shape", None) != want:
        raise ValueError(f"t_blocks must have shape [B, N / block_size] = {want}, "
                         f"got {getattr(t_blocks, 'shape', None)}")
    if not jnp.issubdtype(t_blocks.dtype, jnp.floating):
        raise TypeError(f"t_blocks must be floating, got dtype {t_blocks.dtype}")


def block_elbo_terms(process: BlockProcess, x0_logits, x0, z_t, t_blocks) -> jax.Array:
    r"""The bound's integrand at the block times, per example in nats:

    .. math:: \sum_b \frac{-\alpha_{t_b}'}{1 - \alpha_{t_b}} \sum_{\ell \in b:\, z_t^\ell = m}
        -\log\tilde p_\theta(x^\ell | z_t^b, x^{<b})

    with :math:`\tilde p_\theta` the softmax of ``x0_logits`` over the non-``[MASK]`` ids.

    Args:
      process: the block process.
      x0_logits: ``float [B, N, V]``, block :math:`b`'s rows from :math:`z_t^b, x^{<b}`.
      x0: clean ids ``int [B, N]``.
      z_t: ids ``int [B, N]``.
      t_blocks: ``float32 [B, N / k]`` in ``(0, 1]``.

    Returns:
      ``float32 [B]``.
    """
    check_block_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_tokens("z_t", z_t, process.vocab_size, shape=x0.shape)
    check_logits("x0_logits", x0_logits, *x0.shape, process.vocab_size)
    _check_block_times(process, t_blocks, x0.shape)
    log_p_x0 = log_softmax_excluding(x0_logits.astype(jnp.float32), process.mask_id)
    nll = -jnp.take_along_axis(log_p_x0, x0[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weight = masking_weight(process.masked, _per_token(process, t_blocks))
    return jnp.sum(jnp.where(z_t == process.mask_id, weight * nll, 0.0), axis=-1)


class TwoStream(NamedTuple):
    """BD3-LM's vectorised input of a block denoiser: the noisy sequence and the clean one,
    ``int [B, N]`` each. A block ``TextTransformer`` reads ``[noisy; clean]`` (``2N``
    tokens, both halves at positions ``0..N-1``) under
    ``BlockCausalMask(block_size, two_stream=True)`` and returns the noisy half's logits:
    the rows of block ``b`` see noisy block ``b`` and the clean blocks before it, so one
    pass gives every block's denoiser."""

    noisy: jax.Array
    clean: jax.Array


def _two_stream_logits(denoise_fn, z_t, x0, cond, vocab_size: int) -> jax.Array:
    logits = denoise_fn(TwoStream(noisy=z_t, clean=x0), None, cond)
    check_logits("denoise_fn output", logits, *x0.shape, vocab_size)
    return logits.astype(jnp.float32)


def block_diffusion_loss(key, denoise_fn, process: BlockProcess, x0, *, cond=None,
                         t_blocks=None, antithetic: bool = True) -> jax.Array:
    r"""BD3-LM's training loss: the block bound with one time per block, in one denoiser call.

    .. math:: \mathcal L = \sum_b \frac{-\alpha_{t_b}'}{1 - \alpha_{t_b}}
        \sum_{\ell \in b:\, z_t^\ell = m} -\log\tilde p_\theta(x^\ell | z_t^b, x^{<b}),
        \qquad t_b \sim \mathcal U(0, 1],\ z_t^b \sim q(z_t^b | x^b)

    an unbiased estimate of the bound on :math:`-\log p_\theta(x)` (module doc). BD3-LM also
    clips the times to a searched interval to lower the variance; that estimates a
    different quantity and is not done here.

    Args:
      key: PRNG key for the times (unless given) and :math:`z_t`.
      denoise_fn: ``denoise_fn(TwoStream(z_t, x0), None, cond) -> logits [B, N, V]``.
      process: the block process.
      x0: clean ids ``int [B, N]``, ``N`` a multiple of the block size.
      cond: conditioning passed to ``denoise_fn`` (batch first).
      t_blocks: optional fixed ``float32 [B, N / k]`` times in ``(0, 1]``.
      antithetic: the times on BD3-LM's shifted grid (:func:`block_times`).

    Returns:
      ``float32 [B]`` nats.
    """
    check_block_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    batch, length = x0.shape
    check_cond(cond, batch)
    key_t, key_z = jax.random.split(key)
    if t_blocks is None:
        t_blocks = block_times(key_t, batch, num_blocks(process, length), antithetic=antithetic)
    z_t = block_q_sample(key_z, process, x0, t_blocks)
    logits = _two_stream_logits(denoise_fn, z_t, x0, cond, process.vocab_size)
    return block_elbo_terms(process, logits, x0, z_t, t_blocks)


def block_elbo(key, denoise_fn, process: BlockProcess, x0, *, num_samples: int = 128,
               cond=None) -> jax.Array:
    r"""The block bound per example in nats, by stratified Monte Carlo over each block's time:

    .. math:: \mathcal L \approx \frac1S \sum_{j=0}^{S-1} \mathcal L(t_j),\qquad
        t_{j, b} = 1 - \frac{j + u_b}{S},\ u_b \sim \mathcal U[0, 1)

    (one :math:`u` per example and block, a fresh :math:`z_t` per stratum; unbiased), one
    ``lax.scan`` over the ``S`` strata.

    Args:
      key: PRNG key.
      denoise_fn, process, x0, cond: as in :func:`block_diffusion_loss`.
      num_samples: :math:`S`, the strata (denoiser calls).

    Returns:
      ``float32 [B]`` nats.
    """
    check_block_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    num_samples = check_int("num_samples", num_samples)
    batch, length = x0.shape
    check_cond(cond, batch)
    key_u, key_z = jax.random.split(key)
    u = jax.random.uniform(key_u, (batch, num_blocks(process, length)), jnp.float32)

    def body(total, j):
        t_blocks = ((num_samples - 1 - j).astype(jnp.float32) + (1.0 - u)) / num_samples
        z_t = block_q_sample(jax.random.fold_in(key_z, j), process, x0, t_blocks)
        logits = _two_stream_logits(denoise_fn, z_t, x0, cond, process.vocab_size)
        return total + block_elbo_terms(process, logits, x0, z_t, t_blocks), None

    total, _ = jax.lax.scan(body, jnp.zeros((batch,), jnp.float32),
                            jnp.arange(num_samples, dtype=jnp.int32))
    return total / num_samples


def uncached_block_decoder(logits_fn, shape: tuple[int, int], *, mask_id: int):
    """A ``(decode_fn, state)`` pair for :func:`block_sample` without a KV cache.

    The state is the sequence so far, ``(buffer int32 [B, N], length)``; ``decode_fn(block,
    state, cond=None)`` writes the block at ``length`` and runs ``logits_fn(buffer, cond) ->
    [B, N, V]`` -- a block-causal model, e.g. ``lambda x, cond: apply_fn(params, x, None,
    cond)`` of a block ``TextTransformer`` -- on the whole buffer (positions after the block
    hold ``[MASK]``, which block-causal attention hides), so every step costs a full-length
    pass. (:func:`jaxdiff.discrete.guided_decoder` binds ``cond``.)
    """
    batch, length = check_sequence_shape(shape)

    def decode_fn(block, state, cond=None):
        buffer, start = state
        buffer = jax.lax.dynamic_update_slice(buffer, block.astype(jnp.int32), (0, start))
        logits = logits_fn(buffer, cond)
        rows = jax.lax.dynamic_slice_in_dim(logits, start, block.shape[1], axis=1)
        return rows, (buffer, start + block.shape[1])

    return decode_fn, (jnp.full((batch, length), mask_id, jnp.int32), jnp.zeros((), jnp.int32))


def block_sample(key, decode_fn, state, process: BlockProcess, shape, *, num_steps: int,
                 temperature: float = 1.0, top_p: float = 1.0, stop_id: int | None = None,
                 float64: bool = False, inpaint_mask=None, inpaint_values=None) -> jax.Array:
    r"""Block-by-block generation (BD3-LM): each block is unmasked in ``num_steps``
    masked-diffusion steps given the finished blocks, then appended to the state.

    Within block :math:`b` the steps are :func:`jaxdiff.discrete.masked_sample`'s, with
    :math:`\tilde p_\theta(\cdot | z_t^b, x^{<b})` from ``decode_fn``; the block holds no
    ``[MASK]`` after the last. The denoiser takes no time, so a step that unmasked nothing
    leaves its input and hence its prediction unchanged: the next step reuses the logits and
    skips the network (MDLM's cached sampler, ``cache=True``, exact here). The finished block
    is run once more to append it to the state (its clean keys and values, for a KV cache).

    Block ``b`` draws with key ``fold_in(key, b)`` (its step ``i`` with ``fold_in(fold_in(key,
    b), i)``), so two decoders that compute the same logits (the KV cache and
    :func:`uncached_block_decoder`) give the same tokens. The blocks are one
    ``lax.while_loop``: generation is any number of blocks up to ``N`` (the decoder's
    capacity, e.g. the model's ``max_length``) and, with ``stop_id``, ends after the block in
    which every sequence has produced that token (BD3-LM's variable-length sampling).

    Args:
      key: PRNG key.
      decode_fn: ``decode_fn(block int32 [B, k], state) -> (logits [B, k, V], state)``.
      state: the empty decoder state (e.g. ``init_cache(params, B)``).
      process: the block process.
      shape: ``(B, N)``, ``N`` a multiple of the block size (static).
      num_steps: :math:`K` unmasking steps per block (static).
      temperature: divides the logits (``< 1`` sharpens).
      top_p: nucleus mass in ``(0, 1]``.
      stop_id: an end token, or None: every position after a sequence's first ``stop_id``
        holds ``stop_id``, and no block is drawn once every sequence has one.
      float64: categorical draws in float64 (needs 64-bit mode).
      inpaint_mask, inpaint_values: ``[B, N]`` known tokens, clamped in every block from its
        first step (left and within-block context).

    Returns:
      ``int32 [B, N]`` ids, no ``[MASK]``.
    """
    check_block_process(process)
    batch, length = check_sequence_shape(shape)
    check_float64(float64)
    blocks, k = num_blocks(process, length), process.block_size
    num_steps = check_int("num_steps", num_steps)
    check_temperature(temperature)
    check_top_p(top_p)
    known, values = check_inpaint(inpaint_mask, inpaint_values, (batch, length),
                                  process.vocab_size, process.mask_id)

    if stop_id is not None:
        if isinstance(stop_id, bool) or not isinstance(stop_id, int) or not (
                0 <= stop_id < process.vocab_size) or stop_id == process.mask_id:
            raise ValueError(f"stop_id must be a token id in [0, {process.vocab_size}) other "
                             f"than [MASK] ({process.mask_id}), got {stop_id!r}")
        if known is not None:
            raise ValueError("stop_id and inpainting do not go together: the tokens after a "
                             "stop are the stop token, known or not")
    layers = getattr(state, "layers", None)   # a jaxdiff.models.KVCache, or another state
    if layers is not None and layers[0].keys.shape[1] < length:
        # writing past a KV cache's end would be clamped silently
        raise ValueError(f"the KV cache holds {state.layers[0].keys.shape[1]} positions, fewer "
                         f"than the {length} to generate (the model's max_length)")

    def block_of(x, b):   # [B, N] -> block b, [B, k]
        return None if x is None else jax.lax.dynamic_slice_in_dim(x, b * k, k, axis=1)

    def one_block(carry):
        b, state, tokens, done = carry
        z = masked_sample(jax.random.fold_in(key, b),
                          lambda z, t, cond=None: decode_fn(z, state)[0], process.masked,
                          (batch, k), num_steps=num_steps, temperature=temperature,
                          top_p=top_p, cache=True, float64=float64,
                          inpaint_mask=block_of(known, b), inpaint_values=block_of(values, b))
        _, state = decode_fn(z, state)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, z, b * k, axis=1)
        if stop_id is not None:
            done = done | jnp.any(z == stop_id, axis=1)
        return b + 1, state, tokens, done

    def more(carry):
        b, _, _, done = carry
        return (b < blocks) & ~jnp.all(done)

    fill = process.mask_id if stop_id is None else stop_id
    start = (jnp.zeros((), jnp.int32), state, jnp.full((batch, length), fill, jnp.int32),
             jnp.zeros((batch,), bool))
    _, _, tokens, _ = jax.lax.while_loop(more, one_block, start)
    if stop_id is None:
        return tokens
    stops = (tokens == stop_id).astype(jnp.int32)
    return jnp.where(jnp.cumsum(stops, axis=1) - stops > 0, stop_id, tokens)
