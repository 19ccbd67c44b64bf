"""Multi-head self-attention over token sequences, with an optional KV-cache decode step.

Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need") through
``jax.nn.dot_product_attention``, which computes logits and softmax in float32 even for
bfloat16 inputs. The same module serves the UNet's spatial attention (Ho et al. 2020),
DiT blocks (Peebles & Xie 2023) and the text transformer, bidirectional or causal.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.embeddings import apply_rotary
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.typing import Array


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
        out_BxLxHxK = jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK,
                                                   is_causal=causal)
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
