"""Attention from queries to a padded set of keys: cross-attention to a caption's tokens.

Latent diffusion (Rombach et al. 2022, Sec. 3.3) conditions the denoiser on a caption by
cross-attention: the image features are the queries, the text encoder's token embeddings
the keys and values, :math:`\\mathrm{softmax}(Q K^\\top / \\sqrt{d}) V`. Captions differ in
length, so the keys come with a padding mask and a padded key gets zero weight: the output
does not depend on what the padded rows hold. BERT's self-attention is the same computation
with the tokens as both queries and keys.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff._validation import check_floating, is_concrete
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.typing import Array


def masked_attention(q_BxLxHxK: Array, k_BxSxHxK: Array, v_BxSxHxK: Array,
                     key_mask_BxS: Array) -> Array:
    r"""Per head :math:`\mathrm{softmax}(q k^\top / \sqrt{K} + m)\,v` with :math:`m = 0` on
    the keys where ``key_mask_BxS`` is True and :math:`-\infty` elsewhere (logits and softmax
    in float32); ``[B, L, H, K]`` in the dtype of ``q``. Every row needs one key: a caption
    keeps at least its begin token."""
    if is_concrete(key_mask_BxS) and not np.all(np.any(np.asarray(key_mask_BxS), axis=-1)):
        raise ValueError("key_mask_BxS has a row with no key (every caption keeps at least "
                         "its begin token)")
    logits_BxHxLxS = jnp.einsum("blhk,bshk->bhls", q_BxLxHxK, k_BxSxHxK,
                                preferred_element_type=jnp.float32) / math.sqrt(
        q_BxLxHxK.shape[-1])
    logits_BxHxLxS = jnp.where(key_mask_BxS[:, None, None, :], logits_BxHxLxS, -jnp.inf)
    weights_BxHxLxS = jax.nn.softmax(logits_BxHxLxS, axis=-1)
    return jnp.einsum("bhls,bshk->blhk", weights_BxHxLxS.astype(v_BxSxHxK.dtype), v_BxSxHxK,
                      preferred_element_type=jnp.float32).astype(q_BxLxHxK.dtype)


class CrossAttention(nnx.Module):
    """Queries from ``x``, keys and values from a padded ``context``, output projection.

    Args:
      dim: width of ``x`` (and of the output).
      context_dim: width of the context tokens.
      num_heads: heads; must divide ``dim``.
      zero_init_output: zero-initialise the output projection, so a residual branch starts
        as the identity.
      rngs: parameter initialisation randomness.
    """

    def __init__(self, dim: int, context_dim: int, *, num_heads: int,
                 zero_init_output: bool = False, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.query = nnx.Linear(dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.key = nnx.Linear(context_dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.value = nnx.Linear(context_dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.output = nnx.Linear(dim, dim, kernel_init=ZEROS if zero_init_output
                                 else XAVIER_UNIFORM, rngs=rngs)

    def _heads(self, x_BxLxD: Array) -> Array:
        batch, length, dim = x_BxLxD.shape
        return x_BxLxD.reshape(batch, length, self.num_heads, dim // self.num_heads)

    def __call__(self, x_BxLxD: Array, context_BxSxC: Array, mask_BxS: Array) -> Array:
        """``[B, L, dim]``: ``x`` attending to the context tokens where ``mask_BxS``."""
        batch, source = context_BxSxC.shape[:2]
        check_floating("context", context_BxSxC, shape=(x_BxLxD.shape[0], None, None))
        if mask_BxS.shape != (batch, source) or mask_BxS.dtype != jnp.bool_:
            raise ValueError(f"mask must be bool [B, S] = {(batch, source)}, got "
                             f"{mask_BxS.dtype}{list(mask_BxS.shape)}")
        out_BxLxHxK = masked_attention(self._heads(self.query(x_BxLxD)),
                                       self._heads(self.key(context_BxSxC)),
                                       self._heads(self.value(context_BxSxC)), mask_BxS)
        return self.output(out_BxLxHxK.reshape(x_BxLxD.shape[:2] + (-1,)))
