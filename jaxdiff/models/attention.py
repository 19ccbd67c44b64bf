"""Multi-head self-attention over token sequences, with an optional KV-cache decode step.

Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need"), logits and
softmax in float32 even for bfloat16 inputs. The full-sequence path is
:func:`multi_head_attention` (heads-major layout, batch processed in cache-sized chunks);
the one-token decode step uses ``jax.nn.dot_product_attention`` with the cache lengths.
The same module serves the UNet's spatial attention (Ho et al. 2020), DiT blocks (Peebles &
Xie 2023) and the text transformer, bidirectional or causal.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.embeddings import apply_rotary
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.typing import Array

# Target size of one chunk's float32 score tensor [b, H, L, S]. On CPU, XLA's
# ``jax.nn.dot_product_attention`` (and a plain einsum) materialise the whole [B, H, L, L]
# tensor and are memory bound on it; a few MiB per chunk keeps the logits, their
# exponentials and the softmax sums in cache.
ATTENTION_CHUNK_BYTES = 4 * 2**20
# The softmax shift may be the Cauchy-Schwarz bound m (below) when m <= this: every
# exp(logit - m) is then >= exp(-2 m) = exp(-40), and the backward pass's squared softmax
# denominator >= exp(-80) stays a normal float32 / bfloat16 number (with m <= 40 it
# underflowed to 0 and gave NaN gradients, e.g. a causal first row with q . k ~ -|q||k|).
_BOUND_SHIFT_MAX = 20.0


def _softmax_shift(logits_BxHxLxS: Array, q_BxHxLxK: Array, k_BxHxSxK: Array) -> Array:
    r"""A per-query shift ``m >= max_s logits`` for a stable softmax, ``[b, H, L, 1]``.

    By Cauchy-Schwarz, :math:`q_l \cdot k_s / \sqrt{K} \le m_l = |q_l| \max_s |k_s| /
    \sqrt{K}`, which costs ``O(L K)`` instead of the ``O(L S)`` row maximum (a minor-axis
    reduction that XLA:CPU runs slowly). Every logit is also ``>= -m_l``, so when all
    ``m_l <= 20`` no ``exp(logit - m_l)`` (nor its square in the backward pass)
    overflows or underflows; otherwise (one
    ``lax.cond`` per chunk) the exact row maximum is used. Softmax is invariant to the
    shift, so both give the same probabilities up to rounding.
    """
    head_dim = q_BxHxLxK.shape[-1]
    q_norm_BxHxLx1 = jnp.sqrt(jnp.sum(jnp.square(q_BxHxLxK.astype(jnp.float32)), axis=-1,
                                      keepdims=True))
    k_norm_BxHx1x1 = jnp.max(jnp.sqrt(jnp.sum(jnp.square(k_BxHxSxK.astype(jnp.float32)),
                                              axis=-1)), axis=-1)[..., None, None]
    bound_BxHxLx1 = q_norm_BxHxLx1 * k_norm_BxHx1x1 / math.sqrt(head_dim)
    return jax.lax.cond(jnp.max(bound_BxHxLx1) <= _BOUND_SHIFT_MAX,
                        lambda: bound_BxHxLx1,
                        lambda: jnp.max(logits_BxHxLxS, axis=-1, keepdims=True))


def _attention_heads_major(q_BxHxLxK: Array, k_BxHxSxK: Array, v_BxHxSxK: Array,
                           causal: bool) -> Array:
    length, source, head_dim = q_BxHxLxK.shape[2], k_BxHxSxK.shape[2], q_BxHxLxK.shape[3]
    logits_BxHxLxS = jnp.einsum("bhlk,bhsk->bhls", q_BxHxLxK, k_BxHxSxK,
                                preferred_element_type=jnp.float32) / math.sqrt(head_dim)
    if causal:
        allowed_LxS = jnp.arange(length)[:, None] >= jnp.arange(source)[None, :]
        logits_BxHxLxS = jnp.where(allowed_LxS, logits_BxHxLxS, -jnp.inf)
    # softmax(l) = exp(l - m) / sum(exp(l - m)) for any m; the shift is a constant for the
    # softmax, so stopping its gradient leaves every derivative exact.
    if jnp.finfo(v_BxHxSxK.dtype).minexp < -120:  # float32 / bfloat16 range: see the bound
        shift_BxHxLx1 = _softmax_shift(logits_BxHxLxS, q_BxHxLxK, k_BxHxSxK)
    else:
        shift_BxHxLx1 = jnp.max(logits_BxHxLxS, axis=-1, keepdims=True)
    weights_BxHxLxS = jnp.exp(logits_BxHxLxS - jax.lax.stop_gradient(shift_BxHxLx1))
    # The softmax denominator comes out of the same matmul as the numerator: a ones column
    # appended to v (a dot instead of a second minor-axis reduction).
    ones_BxHxSx1 = jnp.ones(v_BxHxSxK.shape[:-1] + (1,), v_BxHxSxK.dtype)
    v_ext_BxHxSxK1 = jnp.concatenate([v_BxHxSxK, ones_BxHxSx1], axis=-1)
    out_ext_BxHxLxK1 = jnp.einsum("bhls,bhsk->bhlk", weights_BxHxLxS.astype(v_BxHxSxK.dtype),
                                  v_ext_BxHxSxK1, preferred_element_type=jnp.float32)
    out_BxHxLxK = out_ext_BxHxLxK1[..., :-1] / out_ext_BxHxLxK1[..., -1:]
    return out_BxHxLxK.astype(q_BxHxLxK.dtype)


def attention_chunk_size(batch: int, num_heads: int, length: int, source: int, *,
                         chunk_bytes: int = ATTENTION_CHUNK_BYTES) -> int:
    """Sequences per chunk so that a chunk's float32 ``[b, H, L, S]`` logits fit ``chunk_bytes``
    (at least 1, at most ``batch``)."""
    per_sequence = 4 * num_heads * length * source
    return max(1, min(batch, chunk_bytes // per_sequence))


def multi_head_attention(q_BxLxHxK: Array, k_BxSxHxK: Array, v_BxSxHxK: Array, *,
                         causal: bool = False,
                         chunk_bytes: int | None = ATTENTION_CHUNK_BYTES) -> Array:
    r"""Scaled dot-product attention, :math:`\mathrm{softmax}(q k^\top / \sqrt{K})\,v` per head.

    Equals ``jax.nn.dot_product_attention(q, k, v, is_causal=causal)`` (to float32
    rounding; the tests check 1e-5), computed for the CPU:

    * heads-major (``[B, H, L, K]``), so each head's two matmuls are contiguous;
    * in chunks of whole sequences (``lax.map`` over the batch), so that one chunk's
      ``[b, H, L, S]`` logits are about ``chunk_bytes`` (``None``: one chunk) and stay in
      cache;
    * the softmax shift from a Cauchy-Schwarz bound on the logits when that is safe
      (``_softmax_shift``), and the softmax denominator from the second matmul: no
      reduction over the ``S`` axis of the logits.

    Logits, softmax and the accumulation of ``softmax @ v`` are float32.

    Args:
      q_BxLxHxK: queries; ``k_BxSxHxK``, ``v_BxSxHxK``: keys and values.
      causal: query ``i`` attends to keys ``0..i`` only (needs ``L == S``).
      chunk_bytes: target float32 size of one chunk's logits.

    Returns:
      ``[B, L, H, K]`` in the dtype of ``q``.
    """
    batch, length, num_heads, _ = q_BxLxHxK.shape
    source = k_BxSxHxK.shape[1]
    if causal and source != length:
        raise ValueError(f"causal attention needs as many keys as queries, got {source} keys "
                         f"for {length} queries")
    qkv = tuple(jnp.swapaxes(a, 1, 2) for a in (q_BxLxHxK, k_BxSxHxK, v_BxSxHxK))
    size = (batch if chunk_bytes is None else
            attention_chunk_size(batch, num_heads, length, source, chunk_bytes=chunk_bytes))
    chunks, rest = divmod(batch, size)
    if chunks <= 1 and rest == 0:
        out_BxHxLxK = _attention_heads_major(*qkv, causal)
    else:
        # One chunk of `size` sequences per step (reshaped rather than lax.map's batch_size,
        # which would vmap the chunk function and turn its lax.cond into a select).
        head = tuple(a[:chunks * size].reshape((chunks, size) + a.shape[1:]) for a in qkv)
        out = jax.lax.map(lambda c: _attention_heads_major(*c, causal), head)
        parts = [out.reshape((chunks * size,) + out.shape[2:])]
        if rest:
            parts.append(_attention_heads_major(*(a[chunks * size:] for a in qkv), causal))
        out_BxHxLxK = jnp.concatenate(parts, axis=0) if rest else parts[0]
    return jnp.swapaxes(out_BxHxLxK, 1, 2)


class LayerKVCache(NamedTuple):
    """Keys and values of the tokens decoded so far by one attention layer.

    Attributes:
      keys: ``[B, max_length, num_heads, head_dim]``; rows at and after the decode
        position are unused.
      values: same shape as ``keys``.
    """

    keys: Array
    values: Array


class SelfAttention(nnx.Module):
    """Fused QKV projection, multi-head attention, output projection.

    Args:
      dim: model width (input and output features).
      num_heads: number of heads; must divide ``dim``.
      rotary: apply rotary position embeddings to queries and keys.
      zero_init_output: zero-initialise the output projection, so a residual branch
        starts as the identity (Ho et al. 2020; Dhariwal & Nichol 2021).
      kernel_init: initialiser of both projection kernels.
      rngs: parameter initialisation randomness.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        rotary: bool = False,
        zero_init_output: bool = False,
        kernel_init: nnx.Initializer = XAVIER_UNIFORM,
        rngs: nnx.Rngs,
    ):
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rotary = rotary
        self.qkv = nnx.Linear(dim, 3 * dim, kernel_init=kernel_init, rngs=rngs)
        output_init = ZEROS if zero_init_output else kernel_init
        self.output = nnx.Linear(dim, dim, kernel_init=output_init, rngs=rngs)

    def _project(self, x_BxLxD: Array, positions_BxL: Array) -> tuple[Array, Array, Array]:
        batch, length, _ = x_BxLxD.shape
        qkv_BxLx3xHxK = self.qkv(x_BxLxD).reshape(batch, length, 3, self.num_heads,
                                                   self.head_dim)
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = (qkv_BxLx3xHxK[:, :, i] for i in range(3))
        if self.rotary:
            q_BxLxHxK = apply_rotary(q_BxLxHxK, positions_BxL)
            k_BxLxHxK = apply_rotary(k_BxLxHxK, positions_BxL)
        return q_BxLxHxK, k_BxLxHxK, v_BxLxHxK

    def _merge_heads(self, out_BxLxHxK: Array) -> Array:
        batch, length = out_BxLxHxK.shape[:2]
        return self.output(out_BxLxHxK.reshape(batch, length, self.num_heads * self.head_dim))

    def __call__(self, x_BxLxD: Array, *, causal: bool = False) -> Array:
        """Attends over the whole sequence; ``causal`` masks keys after each query."""
        batch, length, _ = x_BxLxD.shape
        positions_BxL = jnp.broadcast_to(jnp.arange(length)[None, :], (batch, length))
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = self._project(x_BxLxD, positions_BxL)
        out_BxLxHxK = multi_head_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, causal=causal)
        return self._merge_heads(out_BxLxHxK)

    def init_cache(self, batch_size: int, max_length: int, *, dtype=jnp.float32) -> LayerKVCache:
        """An empty cache for decoding up to ``max_length`` tokens."""
        shape = (batch_size, max_length, self.num_heads, self.head_dim)
        return LayerKVCache(keys=jnp.zeros(shape, dtype), values=jnp.zeros(shape, dtype))

    def decode_step(self, x_Bx1xD: Array, cache: LayerKVCache, *,
                    position: Array) -> tuple[Array, LayerKVCache]:
        """Causal attention for one new token at ``position``, given the cached prefix.

        Writes the token's key and value into row ``position`` of the cache and attends
        over rows ``0..position``, which equals row ``position`` of the causal
        ``__call__`` on the full sequence.

        Args:
          x_Bx1xD: the new token's features.
          cache: keys and values of tokens ``0..position-1``.
          position: int32 scalar, the new token's index (traced values are fine).

        Returns:
          ``([B, 1, D], updated cache)``.
        """
        batch = x_Bx1xD.shape[0]
        positions_Bx1 = jnp.full((batch, 1), position, dtype=jnp.int32)
        q_Bx1xHxK, k_Bx1xHxK, v_Bx1xHxK = self._project(x_Bx1xD, positions_Bx1)
        start = (0, position, 0, 0)
        cache = LayerKVCache(
            keys=jax.lax.dynamic_update_slice(cache.keys, k_Bx1xHxK.astype(cache.keys.dtype),
                                              start),
            values=jax.lax.dynamic_update_slice(cache.values,
                                                v_Bx1xHxK.astype(cache.values.dtype), start),
        )
        lengths_B = jnp.full((batch,), position + 1, dtype=jnp.int32)
        out_Bx1xHxK = jax.nn.dot_product_attention(
            q_Bx1xHxK, cache.keys.astype(q_Bx1xHxK.dtype), cache.values.astype(q_Bx1xHxK.dtype),
            key_value_seq_lengths=lengths_B)
        return self._merge_heads(out_Bx1xHxK), cache
