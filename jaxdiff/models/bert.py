"""A BERT encoder (Devlin et al. 2019), the network of sentence-transformers' MiniLM models.

Post-LayerNorm transformer: token + position + segment-0 embeddings, LayerNorm; per layer
:math:`h = \\mathrm{LN}(x + \\mathrm{Attn}(x))`, :math:`y = \\mathrm{LN}(h + W_2\\,
\\mathrm{GELU}(W_1 h))` with exact (erf) GELU, attention over the caption's real tokens
only. ``mean_pool`` is sentence-transformers' mean pooling: the average of the last hidden
states over the real tokens (Reimers & Gurevych 2019). all-MiniLM-L6-v2 is ``BertConfig()``:
6 layers, width 384, 12 heads, 22.7M parameters.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff._validation import check_integer
from jaxdiff.models.cross_attention import CrossAttention
from jaxdiff.typing import Array


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT ``config.json`` the encoder needs (all-MiniLM-L6-v2's values)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    depth: int = 6
    num_heads: int = 12
    mlp_size: int = 1536
    max_length: int = 512
    type_vocab_size: int = 2
    norm_eps: float = 1e-12


class BertLayer(nnx.Module):
    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        d, eps = config.hidden_size, config.norm_eps
        self.attention = CrossAttention(d, d, num_heads=config.num_heads, rngs=rngs)
        self.attention_norm = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)
        self.mlp_hidden = nnx.Linear(d, config.mlp_size, rngs=rngs)
        self.mlp_output = nnx.Linear(config.mlp_size, d, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)

    def __call__(self, x_BxLxD: Array, mask_BxL: Array) -> Array:
        h = self.attention_norm(x_BxLxD + self.attention(x_BxLxD, x_BxLxD, mask_BxL))
        mlp = self.mlp_output(jax.nn.gelu(self.mlp_hidden(h), approximate=False))
        return self.mlp_norm(h + mlp)


class BertEncoder(nnx.Module):
    """``encoder(ids [B, L], mask [B, L]) -> [B, L, hidden_size]``, the last hidden states."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        d = config.hidden_size
        self.token_embedding = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.position_embedding = nnx.Embed(config.max_length, d, rngs=rngs)
        self.segment_embedding = nnx.Embed(config.type_vocab_size, d, rngs=rngs)
        self.embedding_norm = nnx.LayerNorm(d, epsilon=config.norm_eps, rngs=rngs)
        self.layers = nnx.List([BertLayer(config, rngs=rngs) for _ in range(config.depth)])

    def __call__(self, ids_BxL: Array, mask_BxL: Array) -> Array:
        check_integer("ids", ids_BxL, shape=(None, None))
        batch, length = ids_BxL.shape
        if length > self.config.max_length:
            raise ValueError(f"ids has {length} tokens, more than the encoder's max_length="
                             f"{self.config.max_length}")
        if mask_BxL.shape != ids_BxL.shape or mask_BxL.dtype != jnp.bool_:
            raise ValueError(f"mask must be bool {list(ids_BxL.shape)}, got "
                             f"{mask_BxL.dtype}{list(mask_BxL.shape)}")
        x = (self.token_embedding(ids_BxL) + self.position_embedding(jnp.arange(length))[None]
             + self.segment_embedding(jnp.zeros((1, 1), jnp.int32)))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, mask_BxL)
        return x


def mean_pool(hidden_BxLxD: Array, mask_BxL: Array) -> Array:
    r"""``[B, D]``: :math:`\sum_l m_l h_l / \sum_l m_l` over the real tokens."""
    weights = mask_BxL.astype(hidden_BxLxD.dtype)[..., None]
    return jnp.sum(hidden_BxLxD * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
