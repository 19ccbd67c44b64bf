"""The pre-norm transformer block shared by DiT and the text transformer.

With a conditioning vector it is the adaLN-Zero block of Peebles & Xie 2023 ("Scalable
Diffusion Models with Transformers", Sec. 3.2): LayerNorms without affine parameters,
whose shift and scale, and a gate on each residual branch, are regressed from the
conditioning by a zero-initialised linear layer, so each block starts as the identity.
Without conditioning it is the ordinary pre-LayerNorm block (Radford et al. 2019), used
by the causal autoregressive baseline. With ``context_dim`` a cross-attention branch to a
caption's tokens sits between self-attention and the MLP, after its own LayerNorm and with a
zero-initialised output (PixArt-alpha's text-conditioned DiT block, Chen et al. 2024).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.attention import BlockCausalMask, LayerKVCache, SelfAttention
from jaxdiff.models.cross_attention import CrossAttention
from jaxdiff.models.initializers import XAVIER_UNIFORM, ZEROS
from jaxdiff.models.remat import rematerialisable
from jaxdiff.typing import Array


def modulate(x_BxLxD: Array, shift_BxD: Array, scale_BxD: Array) -> Array:
    r"""adaLN modulation :math:`x (1 + \text{scale}) + \text{shift}`, per example."""
    return x_BxLxD * (1 + scale_BxD[:, None, :]) + shift_BxD[:, None, :]


class TransformerBlock(nnx.Module):
    """Self-attention and MLP residual branches, each after a LayerNorm.

    Args:
      dim: model width.
      num_heads: attention heads.
      mlp_ratio: MLP hidden width over ``dim``.
      cond_dim: width of the conditioning vector for adaLN-Zero; ``None`` for plain
        pre-LN blocks with learned LayerNorm affine parameters.
      dropout: dropout rate on each residual branch (before the gate).
      rotary: rotary position embeddings in attention.
      mlp_norm_eps: the epsilon of the LayerNorm before the MLP (the one before attention
        has 1e-6).
      context_dim: width of the caption tokens of a cross-attention branch, or None.
      remat: recompute the block's activations in the backward pass
        (:mod:`jaxdiff.models.remat`).
      rngs: parameter initialisation randomness.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float = 4.0,
        cond_dim: int | None = None,
        dropout: float = 0.0,
        rotary: bool = False,
        mlp_norm_eps: float = 1e-6,
        context_dim: int | None = None,
        remat: bool = False,
        rngs: nnx.Rngs,
    ):
        self.remat = remat
        affine = cond_dim is None
        mlp_dim = int(dim * mlp_ratio)
        self.attention_norm = nnx.LayerNorm(dim, epsilon=1e-6, use_scale=affine,
                                            use_bias=affine, rngs=rngs)
        self.attention = SelfAttention(dim, num_heads=num_heads, rotary=rotary,
                                       kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.cross_norm = (nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
                           if context_dim is not None else None)
        self.cross_attention = (CrossAttention(dim, context_dim, num_heads=num_heads,
                                               zero_init_output=True, rngs=rngs)
                                if context_dim is not None else None)
        self.mlp_norm = nnx.LayerNorm(dim, epsilon=mlp_norm_eps, use_scale=affine,
                                      use_bias=affine, rngs=rngs)
        self.mlp_hidden = nnx.Linear(dim, mlp_dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.mlp_output = nnx.Linear(mlp_dim, dim, kernel_init=XAVIER_UNIFORM, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.modulation = None if affine else nnx.Linear(
            cond_dim, 6 * dim, kernel_init=ZEROS, rngs=rngs)

    def _modulations(self, cond_BxC: Array | None) -> list[Array | None]:
        """shift, scale, gate for attention, then for the MLP (all ``None`` if unconditioned)."""
        if (cond_BxC is None) != (self.modulation is None):
            raise ValueError("cond_BxC must be given exactly when the block has cond_dim")
        if self.modulation is None:
            return [None] * 6
        return list(jnp.split(self.modulation(jax.nn.silu(cond_BxC)), 6, axis=-1))

    def _normed(self, norm: nnx.LayerNorm, x: Array, shift: Array | None,
                scale: Array | None) -> Array:
        return norm(x) if shift is None else modulate(norm(x), shift, scale)

    def _gated(self, branch: Array, gate_BxD: Array | None,
               dropout_rngs: nnx.Rngs | None) -> Array:
        branch = self.dropout(branch, deterministic=dropout_rngs is None, rngs=dropout_rngs)
        return branch if gate_BxD is None else gate_BxD[:, None, :] * branch

    def _mlp(self, x: Array) -> Array:
        return self.mlp_output(jax.nn.gelu(self.mlp_hidden(x), approximate=True))

    @rematerialisable
    def __call__(self, x_BxLxD: Array, cond_BxC: Array | None = None, *, causal: bool = False,
                 mask: BlockCausalMask | None = None, positions: Array | None = None,
                 context=None, dropout_rngs: nnx.Rngs | None = None) -> Array:
        """Applies the block; dropout only when ``dropout_rngs`` is given (train mode);
        ``causal`` / ``mask`` / ``positions`` as in ``SelfAttention``; ``context`` is the
        :class:`~jaxdiff.models.TextCondition` of a block with ``context_dim``."""
        if (context is None) != (self.cross_attention is None):
            raise ValueError("context must be given exactly when the block has context_dim")
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self._modulations(cond_BxC)
        h = self.attention(self._normed(self.attention_norm, x_BxLxD, shift_a, scale_a),
                           causal=causal, mask=mask, positions=positions)
        x_BxLxD = x_BxLxD + self._gated(h, gate_a, dropout_rngs)
        if self.cross_attention is not None:
            h = self.cross_attention(self.cross_norm(x_BxLxD),
                                     context.tokens.astype(x_BxLxD.dtype), context.mask)
            x_BxLxD = x_BxLxD + self._gated(h, None, dropout_rngs)
        h = self._mlp(self._normed(self.mlp_norm, x_BxLxD, shift_m, scale_m))
        return x_BxLxD + self._gated(h, gate_m, dropout_rngs)

    def decode_step(self, x_BxKxD: Array, cond_BxC: Array | None, cache: LayerKVCache, *,
                    position: Array) -> tuple[Array, LayerKVCache]:
        """One decode step of ``K`` new tokens (no dropout); see
        ``SelfAttention.decode_step``."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self._modulations(cond_BxC)
        h, cache = self.attention.decode_step(
            self._normed(self.attention_norm, x_BxKxD, shift_a, scale_a), cache,
            position=position)
        x_BxKxD = x_BxKxD + self._gated(h, gate_a, None)
        h = self._mlp(self._normed(self.mlp_norm, x_BxKxD, shift_m, scale_m))
        return x_BxKxD + self._gated(h, gate_m, None), cache
