"""DiT: the Diffusion Transformer of Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers".

The (latent) image is cut into ``p x p`` patches, linearly embedded, given fixed 2D
sine-cosine positions, and processed by adaLN-Zero transformer blocks conditioned on the
sum of the timestep and class embeddings. A final adaLN layer maps each token back to a
``p x p`` patch of the prediction (and of the variance interpolation if ``learned_variance``).
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff._validation import check_bool, check_divisible, check_int, check_rate
from jaxdiff.models.caption_encoder import CaptionEncoder
from jaxdiff.models.conditioning import check_text_config, image_denoiser_inputs
from jaxdiff.models.embeddings import Embedding, TimestepMLP, sincos_2d_position_embedding
from jaxdiff.models.initializers import NORMAL_002, XAVIER_UNIFORM, ZEROS
from jaxdiff.models.joint_block import JointTransformerBlock
from jaxdiff.models.transformer_block import TransformerBlock, modulate
from jaxdiff.typing import Array, PRNGKey


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiTConfig:
    r"""Hyperparameters of ``DiT``; the defaults are DiT-XL/2 on 256x256 ImageNet latents.

    Attributes:
      image_size: input height and width (latents: 32 for 256x256 images).
      in_channels: input channels (4 for the Stable Diffusion VAE latents).
      patch_size: patch side ``p``; the sequence has ``(image_size / p)**2`` tokens.
      hidden_size: transformer width.
      depth: number of blocks.
      num_heads: attention heads.
      mlp_ratio: MLP hidden width over ``hidden_size``.
      num_classes: classes for class conditioning (label ``num_classes`` is the null
        class of classifier-free guidance), or ``None`` for an unconditional model.
      learned_variance: output ``2 * in_channels`` channels (prediction, then variance).
      dropout: dropout on residual branches (0 in the paper).
      frequency_dim: size of the sinusoidal timestep features.
      timestep_freq_shift: the shift of the timestep sinusoid's frequencies
        :math:`\omega_k = 10000^{-k/(h - \text{shift})}`, ``h = frequency_dim / 2``
        (:func:`~jaxdiff.models.embeddings.timestep_embedding`): 0 in the DiT code, 1 in
        diffusers' ``DiTTransformer2DModel``.
      mlp_norm_eps: the epsilon of each block's LayerNorm before the MLP: 1e-6 in the DiT
        code, diffusers' ``norm_eps`` (1e-5 by default) in ``DiTTransformer2DModel``.
      position_columns_first: the first half of a patch's position features encodes its
        column and the second its row, ``[s(col), s(row)]``, as in the DiT (and MAE) code
        and diffusers; False: ``[s(row), s(col)]``, jaxdiff's order before config version
        6 (:func:`~jaxdiff.models.embeddings.sincos_2d_position_embedding`).
      text_dim: the width of a caption's token and pooled embeddings
        (:class:`~jaxdiff.models.TextCondition`) for a text-conditioned network, or None:
        then every block cross-attends to the caption's tokens (PixArt-alpha, Chen et al.
        2024) and the projected pooled embedding joins the timestep embedding in the adaLN
        conditioning. Exclusive with ``num_classes``.
      caption_vocab_size, caption_length, caption_depth, caption_heads: the network's own
        text encoder, trained with it (:class:`~jaxdiff.models.caption_encoder.CaptionEncoder`,
        a BERT of width ``text_dim``): ``cond`` is then the caption's token ids
        (:class:`~jaxdiff.models.CaptionTokens`, at most ``caption_length``) over
        ``caption_vocab_size`` ids; None (the default) takes encoded captions.
      joint_attention: with ``text_dim``, MM-DiT blocks (SD3, Esser et al. 2024;
        :class:`~jaxdiff.models.joint_block.JointTransformerBlock`) instead of
        cross-attention: the caption's tokens, projected to ``hidden_size``, form a second
        stream with its own weights, and each block attends over image and caption tokens
        together.
      remat: recompute each block's activations in the backward pass instead of keeping
        them (:mod:`jaxdiff.models.remat`): less memory in training for about one more
        forward pass; the same function and parameters.
    """

    image_size: int = 32
    in_channels: int = 4
    patch_size: int = 2
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int | None = 1000
    learned_variance: bool = True
    dropout: float = 0.0
    frequency_dim: int = 256
    timestep_freq_shift: float = 0.0
    mlp_norm_eps: float = 1e-6
    position_columns_first: bool = True
    text_dim: int | None = None
    caption_vocab_size: int | None = None
    caption_length: int = 24
    caption_depth: int = 2
    caption_heads: int = 4
    joint_attention: bool = False
    remat: bool = False

    def __post_init__(self):
        check_text_config(self)
        check_bool("joint_attention", self.joint_attention)
        check_bool("remat", self.remat)
        if self.joint_attention and self.text_dim is None:
            raise ValueError("joint_attention=True (MM-DiT) attends over caption tokens: it "
                             "needs text_dim")
        for name in ("image_size", "in_channels", "patch_size", "hidden_size", "depth",
                     "num_heads", "frequency_dim"):
            check_int(name, getattr(self, name))
        check_divisible("image_size", self.image_size, "patch_size", self.patch_size)
        check_divisible("hidden_size", self.hidden_size, "num_heads", self.num_heads)
        check_divisible("hidden_size", self.hidden_size, "4 (2D sin-cos positions)", 4)
        check_rate("dropout", self.dropout)
        check_int("num_classes", self.num_classes, optional=True)
        if not self.mlp_norm_eps > 0:
            raise ValueError(f"mlp_norm_eps must be > 0, got {self.mlp_norm_eps!r}")

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learned_variance else self.in_channels


class DiT(nnx.Module):
    """Diffusion Transformer: ``DiT(config, rngs=...)(x_t, t, cond)``."""

    def __init__(self, config: DiTConfig, *, rngs: nnx.Rngs):
        self.config = config
        width, p = config.hidden_size, config.patch_size
        # Xavier-uniform on the kernel seen as a [p*p*C, D] matrix, as in the paper's code.
        patch_init = nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform",
                                                       in_axis=(0, 1, 2), out_axis=3)
        self.patch_embed = nnx.Conv(config.in_channels, width, (p, p), strides=(p, p),
                                    padding="VALID", kernel_init=patch_init, rngs=rngs)
        self.time_embed = TimestepMLP(frequency_dim=config.frequency_dim, embed_dim=width,
                                      kernel_init=NORMAL_002,
                                      freq_shift=config.timestep_freq_shift, rngs=rngs)
        self.class_embed = (Embedding(config.num_classes + 1, width, init=NORMAL_002, rngs=rngs)
                            if config.num_classes is not None else None)
        self.pooled_embed = (nnx.Linear(config.text_dim, width, kernel_init=NORMAL_002,
                                        rngs=rngs)
                             if config.text_dim is not None else None)
        self.caption_encoder = (CaptionEncoder(config, rngs=rngs)
                                if config.caption_vocab_size is not None else None)
        joint = config.joint_attention
        self.context_embed = (nnx.Linear(config.text_dim, width, kernel_init=XAVIER_UNIFORM,
                                         rngs=rngs) if joint else None)
        self.blocks = nnx.List([
            JointTransformerBlock(width, num_heads=config.num_heads,
                                  mlp_ratio=config.mlp_ratio, cond_dim=width,
                                  dropout=config.dropout, last=i == config.depth - 1,
                                  mlp_norm_eps=config.mlp_norm_eps, remat=config.remat,
                                  rngs=rngs) if joint else
            TransformerBlock(width, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                             cond_dim=width, dropout=config.dropout,
                             mlp_norm_eps=config.mlp_norm_eps, context_dim=config.text_dim,
                             remat=config.remat, rngs=rngs)
            for i in range(config.depth)])
        self.final_norm = nnx.LayerNorm(width, epsilon=1e-6, use_scale=False, use_bias=False,
                                        rngs=rngs)
        self.final_modulation = nnx.Linear(width, 2 * width, kernel_init=ZEROS, rngs=rngs)
        self.final_projection = nnx.Linear(width, p * p * config.out_channels,
                                           kernel_init=ZEROS, rngs=rngs)

    def _patchify(self, x_BxHxWxC: Array) -> Array:
        h_BxGxGxD = self.patch_embed(x_BxHxWxC)
        b, g, _, d = h_BxGxGxD.shape
        positions_1xNxD = jnp.asarray(sincos_2d_position_embedding(
            g, d, columns_first=self.config.position_columns_first))[None]
        return h_BxGxGxD.reshape(b, g * g, d) + positions_1xNxD.astype(h_BxGxGxD.dtype)

    def _unpatchify(self, tokens_BxNxF: Array) -> Array:
        b = tokens_BxNxF.shape[0]
        g, p, c = self.config.grid_size, self.config.patch_size, self.config.out_channels
        patches = tokens_BxNxF.reshape(b, g, g, p, p, c)
        return patches.transpose(0, 1, 3, 2, 4, 5).reshape(b, g * p, g * p, c)

    def __call__(self, x_t: Array, t: Array, cond: Array | None = None, *,
                 dropout_key: PRNGKey | None = None) -> Array:
        """Predicts eps, x0 or v (and the variance interpolation if ``learned_variance``):
        the UNet's contract (:meth:`jaxdiff.models.UNet.__call__`), the same arguments and
        output ``[B, image_size, image_size, out_channels]`` in the parameters' dtype."""
        condition, dropout_rngs = image_denoiser_inputs(self.config, x_t, t, cond, dropout_key)
        if self.caption_encoder is not None:
            condition = self.caption_encoder(condition)
        context = (condition if self.config.text_dim is not None
                   and not self.config.joint_attention else None)

        cond_BxD = self.time_embed(t)
        if self.class_embed is not None:
            cond_BxD = cond_BxD + self.class_embed(condition)
        if self.pooled_embed is not None:
            cond_BxD = cond_BxD + self.pooled_embed(condition.pooled.astype(cond_BxD.dtype))
        h_BxNxD = self._patchify(x_t)
        if self.context_embed is not None:
            c_BxSxD = self.context_embed(condition.tokens.astype(h_BxNxD.dtype))
            for block in self.blocks:
                h_BxNxD, c_BxSxD = block(h_BxNxD, c_BxSxD, condition.mask, cond_BxD,
                                         dropout_rngs=dropout_rngs)
        else:
            for block in self.blocks:
                h_BxNxD = block(h_BxNxD, cond_BxD, context=context, dropout_rngs=dropout_rngs)
        shift, scale = jnp.split(self.final_modulation(jax.nn.silu(cond_BxD)), 2, axis=-1)
        h_BxNxD = modulate(self.final_norm(h_BxNxD), shift, scale)
        return self._unpatchify(self.final_projection(h_BxNxD))
