"""Multi-head self-attention over token sequences, with an optional KV-cache decode step.

Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need"), logits and
softmax in float32 even for bfloat16 inputs. The full-sequence path is
:func:`multi_head_attention`: memory-efficient attention with a hand-written backward pass
(Dao et al. 2022, "FlashAttention"; Rabe & Staats 2021), run over cache-sized chunks of
(sequence, head) rows on CPU and in one piece on GPU / TPU. The one-token decode step uses
``jax.nn.dot_product_attention`` with the cache lengths. The same module serves the UNet's
spatial attention (Ho et al. 2020), DiT blocks (Peebles & Xie 2023) and the text transformer,
bidirectional or causal.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff.models.embeddings import apply_rotary
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.typing import Array

# Target size of one chunk's float32 logits [n, L, S] (n rows = sequence x head pairs). On
# CPU, XLA materialises every intermediate of attention; a few MiB per chunk keeps the
# logits, their exponentials and the backward pass's products in cache. On a GPU the chunks
# run one after another in a loop of small kernels: one chunk was 2-3.8x faster there
# (benchmarks/attention.py on an H200, bfloat16), so ``chunk_bytes="auto"`` chunks on CPU only.
ATTENTION_CHUNK_BYTES = 4 * 2**20

# The softmax shift may be the Cauchy-Schwarz bound m (below) when m <= this: every logit is
# then >= -m, so every exp(logit - m) >= exp(-40) stays a normal float32 / bfloat16 number
# and the softmax denominator cannot underflow.
_BOUND_SHIFT_MAX = 20.0
_F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class BlockCausalMask:
    r"""Block-causal attention (Arriola et al. 2025, "Block Diffusion", BD3-LM): query
    :math:`i` sees key :math:`j` iff :math:`\lfloor j / k \rfloor \le \lfloor i / k
    \rfloor` with :math:`k` = ``block_size``: bidirectional within a block, causal across
    blocks. ``block_size=1`` is causal attention.

    ``two_stream``: the sequence is BD3-LM's vectorised training input
    :math:`[x_t;\, x_0]` of two halves of :math:`N` tokens each. A noisy block :math:`b` sees
    itself and the clean blocks before it; a clean block sees the clean blocks up to itself;
    no clean token sees a noisy one (BD3-LM's block-diagonal, offset block-causal and
    block-causal masks). Row :math:`b` of the noisy half then equals the single-stream
    block-causal model on :math:`[x_0^{<b}, x_t^b]`.

    Static and hashable, so it can be a ``jit`` / ``custom_vjp`` static argument.
    """

    block_size: int
    two_stream: bool = False

    def allowed(self, length: int, source: int) -> np.ndarray:
        """``bool [length, source]``: True where the query row may attend to the key."""
        if length != source:
            raise ValueError(f"block-causal attention needs as many keys as queries, got "
                             f"{source} keys for {length} queries")
        index = np.arange(length)
        if not self.two_stream:
            block = index // self.block_size
            return block[None, :] <= block[:, None]
        if length % 2:
            raise ValueError(f"two-stream attention needs an even length [x_t; x_0], got "
                             f"{length}")
        half = length // 2
        clean, block = index >= half, (index % half) // self.block_size
        q_clean, k_clean = clean[:, None], clean[None, :]
        q_block, k_block = block[:, None], block[None, :]
        noisy_sees = ~q_clean & (((~k_clean) & (k_block == q_block))
                                 | (k_clean & (k_block < q_block)))
        clean_sees = q_clean & k_clean & (k_block <= q_block)
        return noisy_sees | clean_sees


CAUSAL = BlockCausalMask(1)
"""Causal attention: each query sees itself and the keys before it."""


def default_chunk_bytes(platform: str | None = None) -> int | None:
    """``chunk_bytes="auto"``: ``ATTENTION_CHUNK_BYTES`` on ``"cpu"``, ``None`` (one chunk)
    on other platforms; ``platform`` defaults to ``jax.default_backend()``."""
    return ATTENTION_CHUNK_BYTES if (platform or jax.default_backend()) == "cpu" else None


def attention_chunk_rows(rows: int, length: int, source: int, *,
                         chunk_bytes: int | None = ATTENTION_CHUNK_BYTES) -> int:
    """Rows (sequence x head pairs) per chunk: the largest divisor of ``rows`` whose float32
    ``[n, L, S]`` logits fit ``chunk_bytes`` (at least 1; ``None``: all rows at once)."""
    if chunk_bytes is None:
        return rows
    target = max(1, min(rows, chunk_bytes // (4 * length * source)))
    return max(n for n in range(1, target + 1) if rows % n == 0)


def _scaled_logits(q_NxLxK: Array, kt_NxKxS: Array, mask: BlockCausalMask | None) -> Array:
    r"""Float32 :math:`q k^\top / \sqrt{K}` ``[n, L, S]``; ``-inf`` where ``mask`` forbids."""
    logits = jnp.einsum("nlk,nks->nls", q_NxLxK, kt_NxKxS,
                        preferred_element_type=_F32) / math.sqrt(q_NxLxK.shape[-1])
    if mask is not None:
        logits = jnp.where(mask.allowed(*logits.shape[1:]), logits, -jnp.inf)
    return logits


def _softmax_shift(logits_t_NxSxL: Array, q_NxLxK: Array, kt_NxKxS: Array,
                   weights_dtype) -> Array:
    r"""A per-query shift ``m >= max_s logits`` for a stable softmax, ``[n, 1, L]`` (from the
    transposed logits ``[n, S, L]``).

    By Cauchy-Schwarz, :math:`q_l \cdot k_s / \sqrt{K} \le m_l = |q_l| \max_s |k_s| /
    \sqrt{K}`, which costs ``O(L K)`` instead of the ``O(L S)`` maximum over the keys. Every
    logit is also ``>= -m_l``, so when all ``m_l <= 20`` no ``exp(logit - m_l)`` underflows
    in ``weights_dtype`` (float32 or bfloat16; float16 always takes the exact maximum);
    otherwise (one ``lax.cond`` per chunk) the exact maximum is used. Softmax is invariant
    to the shift.
    """
    if jnp.finfo(weights_dtype).minexp >= -120:  # e.g. float16: exp(-40) underflows
        return jnp.max(logits_t_NxSxL, axis=1, keepdims=True)
    q_norm_NxL = jnp.sqrt(jnp.sum(jnp.square(q_NxLxK.astype(_F32)), -1))
    k_norm_N = jnp.max(jnp.sqrt(jnp.sum(jnp.square(kt_NxKxS.astype(_F32)), 1)), -1)
    bound_Nx1xL = (q_norm_NxL * k_norm_N[:, None] / math.sqrt(q_NxLxK.shape[-1]))[:, None, :]
    return jax.lax.cond(jnp.max(bound_Nx1xL) <= _BOUND_SHIFT_MAX,
                        lambda: bound_Nx1xL,
                        lambda: jnp.max(logits_t_NxSxL, axis=1, keepdims=True))


def _forward_chunk(q_NxLxK: Array, kt_NxKxS: Array, vt_NxKxS: Array,
                   mask: BlockCausalMask | None) -> tuple[Array, Array]:
    """Output ``[n, L, K]`` and the softmax's log normaliser ``[n, L]`` (float32).

    Computed on the transposed logits ``[n, S, L]``: both products then have the large
    operand in the layout XLA:CPU multiplies fastest (``k q^T`` and ``v_ext^T P^T``, about
    1.5x faster than ``q k^T`` and ``P v``, which the backward pass uses).
    """
    head_dim, source = q_NxLxK.shape[-1], kt_NxKxS.shape[-1]
    logits_t_NxSxL = jnp.einsum("nks,nlk->nsl", kt_NxKxS, q_NxLxK,
                                preferred_element_type=_F32) / math.sqrt(head_dim)
    if mask is not None:
        allowed_SxL = mask.allowed(q_NxLxK.shape[1], source).T
        logits_t_NxSxL = jnp.where(allowed_SxL, logits_t_NxSxL, -jnp.inf)
    shift_Nx1xL = _softmax_shift(logits_t_NxSxL, q_NxLxK, kt_NxKxS, vt_NxKxS.dtype)
    weights_t_NxSxL = jnp.exp(logits_t_NxSxL - shift_Nx1xL)
    # The softmax denominator comes out of the same matmul as the numerator: a row of ones
    # appended to v^T (a dot instead of a reduction over S).
    ones_Nx1xS = jnp.ones(vt_NxKxS.shape[:1] + (1, source), vt_NxKxS.dtype)
    vt_ext_NxK1xS = jnp.concatenate([vt_NxKxS, ones_Nx1xS], axis=1)
    out_ext_t_NxK1xL = jnp.einsum("nks,nsl->nkl", vt_ext_NxK1xS,
                                  weights_t_NxSxL.astype(vt_NxKxS.dtype),
                                  preferred_element_type=_F32)
    denominator_Nx1xL = out_ext_t_NxK1xL[:, -1:]
    out_t_NxKxL = out_ext_t_NxK1xL[:, :-1] / denominator_Nx1xL
    log_normaliser_NxL = (shift_Nx1xL + jnp.log(denominator_Nx1xL))[:, 0]
    return jnp.swapaxes(out_t_NxKxL, 1, 2).astype(q_NxLxK.dtype), log_normaliser_NxL


def _backward_chunk(q_NxLxK: Array, kt_NxKxS: Array, vt_NxKxS: Array, out_NxLxK: Array,
                    log_normaliser_NxL: Array, dout_NxLxK: Array,
                    mask: BlockCausalMask | None) -> tuple[Array, Array, Array]:
    r"""Gradients with respect to ``q``, ``k^T``, ``v^T`` from the recomputed softmax
    :math:`P = \exp(S - \mathrm{lse})`: :math:`dV = P^\top dO`, :math:`dP = dO\,V^\top`,
    :math:`dS = P \odot (dP - \mathrm{rowsum}(dO \odot O))`, :math:`dQ = dS\,K/\sqrt{K}`,
    :math:`dK = dS^\top Q/\sqrt{K}` (FlashAttention's backward pass, Dao et al. 2022, Alg. 4).
    """
    dtype, scale = q_NxLxK.dtype, 1.0 / math.sqrt(q_NxLxK.shape[-1])
    probs_NxLxS = jnp.exp(_scaled_logits(q_NxLxK, kt_NxKxS, mask)
                          - log_normaliser_NxL[..., None])
    row_dot_NxLx1 = jnp.sum(dout_NxLxK.astype(_F32) * out_NxLxK.astype(_F32), -1,
                            keepdims=True)
    dprobs_NxLxS = jnp.einsum("nlk,nks->nls", dout_NxLxK, vt_NxKxS,
                              preferred_element_type=_F32)
    dlogits_NxLxS = (probs_NxLxS * (dprobs_NxLxS - row_dot_NxLx1)).astype(dtype)
    # Every product keeps the [n, L, S] operand in its natural layout (XLA:CPU's dots are
    # several times slower when they contract the first axis of a large operand).
    dq = jnp.einsum("nls,nks->nlk", dlogits_NxLxS, kt_NxKxS, preferred_element_type=_F32)
    dkt = jnp.einsum("nlk,nls->nks", q_NxLxK, dlogits_NxLxS, preferred_element_type=_F32)
    dvt = jnp.einsum("nlk,nls->nks", dout_NxLxK, probs_NxLxS.astype(dtype),
                     preferred_element_type=_F32)
    return ((scale * dq).astype(dtype), (scale * dkt).astype(kt_NxKxS.dtype),
            dvt.astype(vt_NxKxS.dtype))


def _over_chunks(fn, rows_per_chunk: int, *arrays: Array):
    """``fn`` over consecutive chunks of ``rows_per_chunk`` leading rows (one ``lax.map``)."""
    rows = arrays[0].shape[0]
    if rows_per_chunk >= rows:
        return fn(*arrays)
    chunks = rows // rows_per_chunk
    out = jax.lax.map(lambda chunk: fn(*chunk),
                      tuple(a.reshape((chunks, rows_per_chunk) + a.shape[1:]) for a in arrays))
    return jax.tree.map(lambda a: a.reshape((rows,) + a.shape[2:]), out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention_rows(q_NxLxK: Array, kt_NxKxS: Array, vt_NxKxS: Array,
                    mask: BlockCausalMask | None, rows_per_chunk: int) -> Array:
    return _attention_rows_forward(q_NxLxK, kt_NxKxS, vt_NxKxS, mask, rows_per_chunk)[0]


def _attention_rows_forward(q_NxLxK, kt_NxKxS, vt_NxKxS, mask, rows_per_chunk):
    out_NxLxK, log_normaliser_NxL = _over_chunks(
        functools.partial(_forward_chunk, mask=mask), rows_per_chunk,
        q_NxLxK, kt_NxKxS, vt_NxKxS)
    return out_NxLxK, (q_NxLxK, kt_NxKxS, vt_NxKxS, out_NxLxK, log_normaliser_NxL)


def _attention_rows_backward(mask, rows_per_chunk, residuals, dout_NxLxK):
    return _over_chunks(functools.partial(_backward_chunk, mask=mask), rows_per_chunk,
                        *residuals, dout_NxLxK)


_attention_rows.defvjp(_attention_rows_forward, _attention_rows_backward)


def multi_head_attention(q_BxLxHxK: Array, k_BxSxHxK: Array, v_BxSxHxK: Array, *,
                         causal: bool = False, mask: BlockCausalMask | None = None,
                         chunk_bytes: int | None | str = "auto") -> Array:
    r"""Scaled dot-product attention, :math:`\mathrm{softmax}(q k^\top / \sqrt{K})\,v` per head.

    Equals ``jax.nn.dot_product_attention(q, k, v, is_causal=causal)`` and its gradients (to
    float32 rounding; the tests check 1e-5), computed the FlashAttention way (Dao et al.
    2022) with XLA operations:

    * the forward pass keeps only the output and the softmax's log normaliser per query;
      the backward pass recomputes the softmax (a ``jax.custom_vjp``), so no ``[B, H, L, S]``
      tensor is stored for the gradient;
    * both run over chunks of (sequence, head) rows sized so that one chunk's ``[n, L, S]``
      float32 logits are about ``chunk_bytes`` (``None``: one chunk) and stay in cache;
    * the softmax shift comes from a Cauchy-Schwarz bound on the logits when that is safe
      (``_softmax_shift``), and the softmax denominator from the output matmul: no
      reduction over the ``S`` axis of the logits.

    Reverse-mode only, like any ``custom_vjp``: ``jax.grad`` / ``jax.vjp`` work (also under
    ``jit``, ``vmap`` and ``remat``), ``jax.jvp`` raises; jaxdiff itself never takes
    forward-mode derivatives of a model (``gaussian.ode_nll`` uses vector-Jacobian
    products).

    Args:
      q_BxLxHxK: queries; ``k_BxSxHxK``, ``v_BxSxHxK``: keys and values.
      causal: query ``i`` attends to keys ``0..i`` only (needs ``L == S``); the same as
        ``mask=CAUSAL``.
      mask: a :class:`BlockCausalMask` (needs ``L == S``), or None: every key.
      chunk_bytes: target float32 size of one chunk's logits; ``"auto"``:
        :func:`default_chunk_bytes` (chunks on CPU, one chunk on GPU / TPU).

    Returns:
      ``[B, L, H, K]`` in the dtype of ``q``.
    """
    batch, length, num_heads, head_dim = q_BxLxHxK.shape
    source = k_BxSxHxK.shape[1]
    if causal:
        if mask is not None:
            raise ValueError("give causal=True or a mask, not both")
        mask = CAUSAL
    if mask is not None and source != length:
        raise ValueError(f"causal attention needs as many keys as queries, got {source} keys "
                         f"for {length} queries")
    rows = batch * num_heads
    q_NxLxK = jnp.swapaxes(q_BxLxHxK, 1, 2).reshape(rows, length, head_dim)
    kt_NxKxS, vt_NxKxS = (jnp.transpose(a, (0, 2, 3, 1)).reshape(rows, head_dim, source)
                          for a in (k_BxSxHxK, v_BxSxHxK))
    if isinstance(chunk_bytes, str):
        if chunk_bytes != "auto":
            raise ValueError(f"chunk_bytes must be an int, None or 'auto', got {chunk_bytes!r}")
        chunk_bytes = default_chunk_bytes()
    rows_per_chunk = attention_chunk_rows(rows, length, source, chunk_bytes=chunk_bytes)
    out_NxLxK = _attention_rows(q_NxLxK, kt_NxKxS, vt_NxKxS, mask, rows_per_chunk)
    return jnp.swapaxes(out_NxLxK.reshape(batch, num_heads, length, head_dim), 1, 2)


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

    def __call__(self, x_BxLxD: Array, *, causal: bool = False,
                 mask: BlockCausalMask | None = None, positions: Array | None = None) -> Array:
        """Attends over the whole sequence; ``causal`` masks keys after each query, ``mask``
        is a :class:`BlockCausalMask`; ``positions`` ``int [L]`` are the rotary positions
        (default ``0..L-1``; BD3-LM's two streams repeat ``0..N-1``)."""
        batch, length, _ = x_BxLxD.shape
        positions = jnp.arange(length) if positions is None else positions
        positions_BxL = jnp.broadcast_to(positions[None, :], (batch, length))
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = self._project(x_BxLxD, positions_BxL)
        out_BxLxHxK = multi_head_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, causal=causal,
                                           mask=mask)
        return self._merge_heads(out_BxLxHxK)

    def init_cache(self, batch_size: int, max_length: int, *, dtype=jnp.float32) -> LayerKVCache:
        """An empty cache for decoding up to ``max_length`` tokens."""
        shape = (batch_size, max_length, self.num_heads, self.head_dim)
        return LayerKVCache(keys=jnp.zeros(shape, dtype), values=jnp.zeros(shape, dtype))

    def decode_step(self, x_BxKxD: Array, cache: LayerKVCache, *,
                    position: Array) -> tuple[Array, LayerKVCache]:
        """Attention for ``K`` new tokens at ``position .. position + K - 1``, given the
        cached prefix.

        Writes the tokens' keys and values into those rows of the cache; each new token
        attends over rows ``0 .. position + K - 1``: the prefix and all ``K`` new tokens.
        With ``K = 1`` this equals row ``position`` of the causal ``__call__`` on the full
        sequence; with ``K`` a block, the block's rows of the block-causal ``__call__``.

        Args:
          x_BxKxD: the new tokens' features.
          cache: keys and values of tokens ``0..position-1``.
          position: int32 scalar, the first new token's index (traced values are fine).

        Returns:
          ``([B, K, D], updated cache)``.
        """
        batch, count, _ = x_BxKxD.shape
        positions_BxK = jnp.broadcast_to(position + jnp.arange(count, dtype=jnp.int32)[None],
                                         (batch, count))
        q_BxKxHxD, k_BxKxHxD, v_BxKxHxD = self._project(x_BxKxD, positions_BxK)
        start = (0, position, 0, 0)
        cache = LayerKVCache(
            keys=jax.lax.dynamic_update_slice(cache.keys, k_BxKxHxD.astype(cache.keys.dtype),
                                              start),
            values=jax.lax.dynamic_update_slice(cache.values,
                                                v_BxKxHxD.astype(cache.values.dtype), start),
        )
        lengths_B = jnp.full((batch,), position + count, dtype=jnp.int32)
        out_BxKxHxD = jax.nn.dot_product_attention(
            q_BxKxHxD, cache.keys.astype(q_BxKxHxD.dtype), cache.values.astype(q_BxKxHxD.dtype),
            key_value_seq_lengths=lengths_B)
        return self._merge_heads(out_BxKxHxD), cache
