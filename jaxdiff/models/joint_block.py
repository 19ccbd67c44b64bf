"""The joint-attention block of MM-DiT (Esser et al. 2024, "Scaling Rectified Flow
Transformers for High-Resolution Image Synthesis", Sec. 4 and Fig. 2): image and caption
tokens as two streams with their own weights and one attention over both.

Each stream has its own adaLN-Zero modulation (from the same timestep + pooled-caption
vector), LayerNorm, query / key / value and output projections and MLP; the attention runs
over the concatenated sequence :math:`[x; c]`, so image tokens read the caption and the caption
tokens read the image. The caption's padding is masked out of the keys: no token attends to
it, so what padded rows hold never reaches the image. In the last block the caption stream
only contributes keys and values (SD3's ``context_pre_only``): its output would be discarded.
SD3.5's RMS query-key normalisation is not included.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.cross_attention import masked_attention
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.models.remat import rematerialisable
from jaxdiff.models.transformer_block import modulate
from jaxdiff.typing import Array


class _Stream(nnx.Module):
    """One stream's weights: modulation, the attention's projections, and (unless
    ``pre_only``) the output projection and the MLP."""

    def __init__(self, dim: int, *, cond_dim: int, mlp_ratio: float, pre_only: bool,
                 mlp_norm_eps: float, rngs: nnx.Rngs):
        self.pre_only = pre_only
        self.modulation = nnx.Linear(cond_dim, (2 if pre_only else 6) * dim,
                                     kernel_init=ZEROS, rngs=rngs)
        self.attention_norm = nnx.LayerNorm(dim, epsilon=1e-6, use_scale=False,
                                            use_bias=False, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        if not pre_only:
            mlp_dim = int(dim * mlp_ratio)
            self.output = nnx.Linear(dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
            self.mlp_norm = nnx.LayerNorm(dim, epsilon=mlp_norm_eps, use_scale=False,
                                          use_bias=False, rngs=rngs)
            self.mlp_hidden = nnx.Linear(dim, mlp_dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
            self.mlp_output = nnx.Linear(mlp_dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)

    def modulations(self, cond_BxC: Array) -> list[Array]:
        return list(jnp.split(self.modulation(jax.nn.silu(cond_BxC)),
                              2 if self.pre_only else 6, axis=-1))

    def qkv_heads(self, x_BxLxD: Array, shift: Array, scale: Array, num_heads: int) -> Array:
        """``[3, B, L, H, K]``: the queries, keys and values of the modulated ``x``."""
        batch, length, dim = x_BxLxD.shape
        qkv = self.qkv(modulate(self.attention_norm(x_BxLxD), shift, scale))
        return qkv.reshape(batch, length, 3, num_heads, dim // num_heads).transpose(2, 0, 1, 3, 4)

    def finish(self, x_BxLxD: Array, attended_BxLxD: Array, mods: list[Array], dropout,
               dropout_rngs: nnx.Rngs | None) -> Array:
        """The attention's and the MLP's gated residual branches."""
        _, _, gate_a, shift_m, scale_m, gate_m = mods
        drop = lambda h: dropout(h, deterministic=dropout_rngs is None,   # noqa: E731
                                 rngs=dropout_rngs)
        x_BxLxD = x_BxLxD + gate_a[:, None, :] * drop(self.output(attended_BxLxD))
        h = modulate(self.mlp_norm(x_BxLxD), shift_m, scale_m)
        h = self.mlp_output(jax.nn.gelu(self.mlp_hidden(h), approximate=True))
        return x_BxLxD + gate_m[:, None, :] * drop(h)


class JointTransformerBlock(nnx.Module):
    """``block(x [B, N, D], c [B, S, D], mask [B, S], cond [B, C]) -> (x, c)``; ``c`` is None
    after a ``last`` block.

    Args:
      dim: width of both streams.
      num_heads: attention heads.
      mlp_ratio: MLP hidden width over ``dim``.
      cond_dim: width of the adaLN conditioning vector.
      dropout: dropout on the residual branches (train mode only).
      last: the caption stream gives keys and values only.
      mlp_norm_eps: the epsilon of the LayerNorms before the MLPs (1e-6 before attention).
      remat: recompute the block's activations in the backward pass
        (:mod:`jaxdiff.models.remat`).
      rngs: parameter initialisation randomness.
    """

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, cond_dim: int,
                 dropout: float = 0.0, last: bool = False, mlp_norm_eps: float = 1e-6,
                 remat: bool = False, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.remat = remat
        self.num_heads = num_heads
        self.image = _Stream(dim, cond_dim=cond_dim, mlp_ratio=mlp_ratio, pre_only=False,
                             mlp_norm_eps=mlp_norm_eps, rngs=rngs)
        self.caption = _Stream(dim, cond_dim=cond_dim, mlp_ratio=mlp_ratio, pre_only=last,
                               mlp_norm_eps=mlp_norm_eps, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    @rematerialisable
    def __call__(self, x_BxNxD: Array, c_BxSxD: Array, mask_BxS: Array, cond_BxC: Array, *,
                 dropout_rngs: nnx.Rngs | None = None) -> tuple[Array, Array | None]:
        image_mods, caption_mods = (self.image.modulations(cond_BxC),
                                    self.caption.modulations(cond_BxC))
        image_qkv = self.image.qkv_heads(x_BxNxD, *image_mods[:2], self.num_heads)
        caption_qkv = self.caption.qkv_heads(c_BxSxD, *caption_mods[:2], self.num_heads)
        q, k, v = jnp.concatenate([image_qkv, caption_qkv], axis=2)
        batch, tokens = x_BxNxD.shape[:2]
        key_mask = jnp.concatenate([jnp.ones((batch, tokens), bool), mask_BxS], axis=1)
        attended = masked_attention(q, k, v, key_mask)
        attended = attended.reshape(attended.shape[:2] + (-1,))
        x_BxNxD = self.image.finish(x_BxNxD, attended[:, :tokens], image_mods, self.dropout,
                                    dropout_rngs)
        if self.caption.pre_only:
            return x_BxNxD, None
        return x_BxNxD, self.caption.finish(c_BxSxD, attended[:, tokens:], caption_mods,
                                            self.dropout, dropout_rngs)
