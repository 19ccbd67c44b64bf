"""The DDPM / ADM UNet for images (NHWC).

Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (App. B): a PixelCNN++-style
UNet with residual blocks, GroupNorm, SiLU, single-head self-attention at 16x16, and a
sinusoidal time embedding added inside each residual block. Nichol & Dhariwal 2021,
"Improved DDPM", and Dhariwal & Nichol 2021, "Diffusion Models Beat GANs" (ADM), add
multi-head attention, scale-shift (FiLM) conditioning of the GroupNorm, BigGAN-style
residual up/downsampling, class embeddings, and a doubled output for the learned
variance. Each of these is a field of ``UNetConfig``; the defaults are DDPM CIFAR-10.
"""

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff._validation import check_bool, check_divisible, check_int, check_rate
from jaxdiff.models.attention import SelfAttention
from jaxdiff.models.caption_encoder import CaptionEncoder
from jaxdiff.models.conditioning import TextCondition, check_text_config, image_denoiser_inputs
from jaxdiff.models.cross_attention import CrossAttention
from jaxdiff.models.embeddings import Embedding, TimestepMLP
from jaxdiff.models.initializers import STANDARD_NORMAL, XAVIER_UNIFORM, ZEROS
from jaxdiff.models.normalization import GroupNorm
from jaxdiff.models.reductions import add_bias
from jaxdiff.models.remat import rematerialisable
from jaxdiff.typing import Array, PRNGKey

Resampling = Literal["up", "down"] | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Hyperparameters of ``UNet``; the defaults are Ho et al. 2020's CIFAR-10 network.

    Attributes:
      image_size: input height and width.
      in_channels: input image channels.
      base_channels: channels of the first level; the time embedding is 4x this.
      channel_mults: channels of each level, as multiples of ``base_channels``; the
        resolution halves between consecutive levels.
      num_res_blocks: residual blocks per level on the way down (one more on the way up).
      attention_levels: indices of the levels (0 = full resolution) whose residual blocks
        are followed by self-attention; the middle block always has attention. Ho et al.'s
        "attention at 16x16" on 32x32 images is level 1. Levels, not spatial sizes, so that
        a config stays valid on images of another size (and maps onto diffusers' per-level
        ``down_block_types``).
      num_heads: attention heads, used when ``head_channels`` is ``None``.
      head_channels: channels per head (ADM); overrides ``num_heads`` when set.
      dropout: dropout rate inside residual blocks (train mode only).
      num_groups: GroupNorm groups; must divide every level's channels.
      scale_shift_norm: FiLM conditioning ``norm(h) * (1 + scale) + shift`` from the
        embedding (ADM) instead of adding it before the norm (DDPM).
      resblock_updown: BigGAN-style residual blocks for up/downsampling (ADM).
      conv_resample: convolutions in the plain up/downsampling layers (DDPM).
      num_classes: number of classes for class conditioning, or ``None``. The label
        embedding has ``num_classes + 1`` rows; label ``num_classes`` is the null class
        of classifier-free guidance.
      learned_variance: output ``2 * in_channels`` channels: the prediction, then the
        variance interpolation ``v`` of Nichol & Dhariwal 2021.
      norm_eps: the epsilon of every GroupNorm.
      downsample_padding: the padding of the stride-2 downsampling convolution: 1 on every
        side, or 0 -- TensorFlow's ``"SAME"`` for stride 2, one row and column after the
        image and none before, as in Ho et al.'s code (diffusers' ``downsample_padding=0``).
      timestep_cos_first, timestep_freq_shift: the sinusoid of the time embedding
        (:func:`~jaxdiff.models.embeddings.timestep_embedding`); Ho et al.'s code has the
        sines first and a shift of 1.
      text_dim: the width of a caption's token and pooled embeddings
        (:class:`~jaxdiff.models.TextCondition`) for a text-conditioned network, or None.
        Then every self-attention block (the attention levels and the middle) is followed
        by cross-attention to the caption's tokens, as Stable Diffusion's spatial
        transformers (Rombach et al. 2022, Sec. 3.3), and the pooled embedding, projected,
        is added to the time embedding. Exclusive with ``num_classes``.
      caption_vocab_size, caption_length, caption_depth, caption_heads: the network's own
        text encoder, trained with it (:class:`~jaxdiff.models.caption_encoder.CaptionEncoder`,
        a BERT of width ``text_dim``): ``cond`` is then the caption's token ids
        (:class:`~jaxdiff.models.CaptionTokens`, at most ``caption_length``) over
        ``caption_vocab_size`` ids; None (the default) takes encoded captions.
      remat: recompute each block's activations in the backward pass instead of keeping
        them (:mod:`jaxdiff.models.remat`): less memory in training for about one more
        forward pass; the same function and parameters.
    """

    image_size: int = 32
    in_channels: int = 3
    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (1,)
    num_heads: int = 1
    head_channels: int | None = None
    dropout: float = 0.1
    num_groups: int = 32
    scale_shift_norm: bool = False
    resblock_updown: bool = False
    conv_resample: bool = True
    num_classes: int | None = None
    learned_variance: bool = False
    norm_eps: float = 1e-6
    downsample_padding: int = 1
    timestep_cos_first: bool = True
    timestep_freq_shift: float = 0.0
    text_dim: int | None = None
    caption_vocab_size: int | None = None
    caption_length: int = 24
    caption_depth: int = 2
    caption_heads: int = 4
    remat: bool = False

    def __post_init__(self):
        check_text_config(self)
        check_bool("remat", self.remat)
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks",
                     "num_heads", "num_groups"):
            check_int(name, getattr(self, name))
        if not self.channel_mults:
            raise ValueError("channel_mults must name at least one level")
        check_divisible("image_size", self.image_size, "2**(len(channel_mults)-1)",
                        2 ** (len(self.channel_mults) - 1))
        levels = range(len(self.channel_mults))
        for level in self.attention_levels:
            if not isinstance(level, int) or level not in levels:
                raise ValueError(f"attention_levels entry {level!r} is not a level index; "
                                 f"the levels are 0..{len(self.channel_mults) - 1} (one per "
                                 f"channel_mults entry)")
        attended = set(self.attention_levels) | {len(self.channel_mults) - 1}   # + middle
        for level, mult in enumerate(self.channel_mults):
            channels = self.base_channels * mult
            check_divisible("base_channels * channel_mult", channels, "num_groups",
                            self.num_groups)
            if level not in attended:
                continue
            if self.head_channels is not None:
                check_divisible("base_channels * channel_mult", channels, "head_channels",
                                self.head_channels)
            else:
                check_divisible("base_channels * channel_mult", channels, "num_heads",
                                self.num_heads)
        check_rate("dropout", self.dropout)
        check_int("num_classes", self.num_classes, optional=True)
        if self.downsample_padding not in (0, 1):
            raise ValueError(f"downsample_padding must be 0 or 1, got "
                             f"{self.downsample_padding!r}")
        if self.downsample_padding == 0 and (self.resblock_updown or not self.conv_resample):
            raise ValueError("downsample_padding=0 pads the downsampling convolution; with "
                             "resblock_updown=True or conv_resample=False there is none")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps!r}")

    @property
    def embed_dim(self) -> int:
        """Width of the time (and class) embedding."""
        return 4 * self.base_channels

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learned_variance else self.in_channels

    def heads_for(self, channels: int) -> int:
        return channels // self.head_channels if self.head_channels else self.num_heads


def conv_layer(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
          padding: tuple[int, int] | None = None, zero_init: bool = False,
          rngs: nnx.Rngs) -> "Conv":
    """Convolution with padding ``(before, after)`` on both spatial axes (default symmetric
    ``k // 2``) and Xavier-uniform (or zero) init."""
    pad = (kernel_size // 2,) * 2 if padding is None else padding
    kernel_init = ZEROS if zero_init else XAVIER_UNIFORM
    return Conv(in_channels, out_channels, (kernel_size, kernel_size),
                strides=(stride, stride), padding=(pad, pad),
                kernel_init=kernel_init, rngs=rngs)


class Conv(nnx.Conv):
    """``nnx.Conv`` (same parameters and initialisation) for NHWC images whose bias
    gradient is a product with ones (``reductions.add_bias``) instead of XLA:CPU's slow
    fused reduction."""

    def __call__(self, x_BxHxWxC: Array) -> Array:
        kernel = self.kernel[...].astype(x_BxHxWxC.dtype)
        y = jax.lax.conv_general_dilated(x_BxHxWxC, kernel, self.strides, self.padding,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return add_bias(y, self.bias[...].astype(y.dtype))


def upsample_nearest(x_BxHxWxC: Array) -> Array:
    """Nearest-neighbour 2x upsampling."""
    return jnp.repeat(jnp.repeat(x_BxHxWxC, 2, axis=1), 2, axis=2)


def downsample_average(x_BxHxWxC: Array) -> Array:
    """2x2 average pooling with stride 2."""
    b, h, w, c = x_BxHxWxC.shape
    return x_BxHxWxC.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _resample(x: Array, resampling: Resampling) -> Array:
    if resampling == "up":
        return upsample_nearest(x)
    if resampling == "down":
        return downsample_average(x)
    return x


class Resample(nnx.Module):
    """Plain 2x up/downsampling: nearest + 3x3 conv up, stride-2 3x3 conv (or average) down;
    ``down_padding`` is the downsampling convolution's (:attr:`UNetConfig.downsample_padding`)."""

    def __init__(self, channels: int, *, direction: Literal["up", "down"], with_conv: bool,
                 down_padding: int = 1, rngs: nnx.Rngs):
        self.direction = direction
        stride, padding = (2, (down_padding, 1)) if direction == "down" else (1, None)
        self.conv = (conv_layer(channels, channels, 3, stride=stride, padding=padding, rngs=rngs)
                     if with_conv else None)

    def __call__(self, x_BxHxWxC: Array) -> Array:
        if self.direction == "up":
            x_BxHxWxC = upsample_nearest(x_BxHxWxC)
            return x_BxHxWxC if self.conv is None else self.conv(x_BxHxWxC)
        return downsample_average(x_BxHxWxC) if self.conv is None else self.conv(x_BxHxWxC)


class ResBlock(nnx.Module):
    """Residual block conditioned on the embedding (Ho et al. 2020; Dhariwal & Nichol 2021).

    ``GroupNorm -> SiLU -> [resample] -> conv3x3 -> + emb (or FiLM) -> GroupNorm -> SiLU
    -> dropout -> conv3x3 (zero init)``, plus a 1x1-conv skip when channels change.
    With ``resampling`` it is the BigGAN-style up/downsampling block: the input and the
    skip are resampled (nearest / average) inside the block. ``embed_dim=None``: no
    conditioning (the autoencoder's blocks; call it with ``emb_BxE=None``). ``remat``:
    recompute its activations in the backward pass (:mod:`jaxdiff.models.remat`).
    """

    def __init__(self, in_channels: int, out_channels: int, *, embed_dim: int | None,
                 dropout: float,
                 num_groups: int, scale_shift_norm: bool, resampling: Resampling = None,
                 norm_eps: float = 1e-6, remat: bool = False, rngs: nnx.Rngs):
        self.remat = remat
        self.scale_shift_norm = scale_shift_norm
        self.resampling = resampling
        self.input_norm = GroupNorm(in_channels, num_groups=num_groups, epsilon=norm_eps)
        self.input_conv = conv_layer(in_channels, out_channels, 3, rngs=rngs)
        embed_out = 2 * out_channels if scale_shift_norm else out_channels
        self.embed_projection = (None if embed_dim is None else
                                 nnx.Linear(embed_dim, embed_out, kernel_init=XAVIER_UNIFORM,
                                            rngs=rngs))
        self.output_norm = GroupNorm(out_channels, num_groups=num_groups, epsilon=norm_eps)
        self.dropout = nnx.Dropout(dropout)
        self.output_conv = conv_layer(out_channels, out_channels, 3, zero_init=True, rngs=rngs)
        self.skip = (None if in_channels == out_channels
                     else conv_layer(in_channels, out_channels, 1, rngs=rngs))

    @rematerialisable
    def __call__(self, x_BxHxWxC: Array, emb_BxE: Array | None, *,
                 dropout_rngs: nnx.Rngs | None) -> Array:
        h = jax.nn.silu(self.input_norm(x_BxHxWxC))
        h = self.input_conv(_resample(h, self.resampling))
        x_BxHxWxC = _resample(x_BxHxWxC, self.resampling)
        if self.embed_projection is None:
            h = self.output_norm(h)
            return self._output(x_BxHxWxC, h, dropout_rngs)
        emb_Bx1x1xF = self.embed_projection(jax.nn.silu(emb_BxE))[:, None, None, :]
        if self.scale_shift_norm:
            scale, shift = jnp.split(emb_Bx1x1xF, 2, axis=-1)
            h = self.output_norm(h) * (1 + scale) + shift
        else:
            h = self.output_norm(h + emb_Bx1x1xF)
        return self._output(x_BxHxWxC, h, dropout_rngs)

    def _output(self, x_BxHxWxC: Array, h: Array, dropout_rngs: nnx.Rngs | None) -> Array:
        """``skip(x) + conv(dropout(silu(h)))`` of the normalised, conditioned ``h``."""
        h = self.dropout(jax.nn.silu(h), deterministic=dropout_rngs is None, rngs=dropout_rngs)
        h = self.output_conv(h)
        skip = x_BxHxWxC if self.skip is None else self.skip(x_BxHxWxC)
        return skip + h


class SpatialAttention(nnx.Module):
    """``x + Attention(GroupNorm(x))`` over the ``H*W`` positions, zero-initialised output."""

    def __init__(self, channels: int, *, num_heads: int, num_groups: int,
                 norm_eps: float = 1e-6, rngs: nnx.Rngs):
        self.norm = GroupNorm(channels, num_groups=num_groups, epsilon=norm_eps)
        self.attention = SelfAttention(channels, num_heads=num_heads, zero_init_output=True,
                                       rngs=rngs)

    def __call__(self, x_BxHxWxC: Array) -> Array:
        b, h, w, c = x_BxHxWxC.shape
        tokens_BxLxC = self.norm(x_BxHxWxC).reshape(b, h * w, c)
        return x_BxHxWxC + self.attention(tokens_BxLxC).reshape(b, h, w, c)


class SpatialCrossAttention(nnx.Module):
    """``x + CrossAttention(GroupNorm(x), caption tokens)`` over the ``H*W`` positions,
    zero-initialised output; padded caption tokens get no weight."""

    def __init__(self, channels: int, text_dim: int, *, num_heads: int, num_groups: int,
                 norm_eps: float = 1e-6, rngs: nnx.Rngs):
        self.norm = GroupNorm(channels, num_groups=num_groups, epsilon=norm_eps)
        self.attention = CrossAttention(channels, text_dim, num_heads=num_heads,
                                        zero_init_output=True, rngs=rngs)

    def __call__(self, x_BxHxWxC: Array, context: TextCondition) -> Array:
        b, h, w, c = x_BxHxWxC.shape
        tokens_BxLxC = self.norm(x_BxHxWxC).reshape(b, h * w, c)
        attended = self.attention(tokens_BxLxC, context.tokens.astype(x_BxHxWxC.dtype),
                                  context.mask)
        return x_BxHxWxC + attended.reshape(b, h, w, c)


class UNetBlock(nnx.Module):
    """A residual block, optionally followed by spatial attention (and, in a text-conditioned
    network, cross-attention to the caption); rematerialised as one with ``config.remat``."""

    def __init__(self, in_channels: int, out_channels: int, *, with_attention: bool,
                 config: UNetConfig, rngs: nnx.Rngs):
        self.remat = config.remat
        self.residual = ResBlock(in_channels, out_channels, embed_dim=config.embed_dim,
                                 dropout=config.dropout, num_groups=config.num_groups,
                                 scale_shift_norm=config.scale_shift_norm,
                                 norm_eps=config.norm_eps, rngs=rngs)
        self.attention = (SpatialAttention(out_channels,
                                           num_heads=config.heads_for(out_channels),
                                           num_groups=config.num_groups,
                                           norm_eps=config.norm_eps, rngs=rngs)
                          if with_attention else None)
        self.cross_attention = (SpatialCrossAttention(out_channels, config.text_dim,
                                                      num_heads=config.heads_for(out_channels),
                                                      num_groups=config.num_groups,
                                                      norm_eps=config.norm_eps, rngs=rngs)
                                if with_attention and config.text_dim is not None else None)

    @rematerialisable
    def __call__(self, x: Array, emb: Array, *, context: TextCondition | None = None,
                 dropout_rngs: nnx.Rngs | None) -> Array:
        h = self.residual(x, emb, dropout_rngs=dropout_rngs)
        if self.attention is not None:
            h = self.attention(h)
        return h if self.cross_attention is None else self.cross_attention(h, context)


def _resampler(channels: int, direction: Literal["up", "down"], config: UNetConfig,
               rngs: nnx.Rngs) -> ResBlock | Resample:
    if config.resblock_updown:
        return ResBlock(channels, channels, embed_dim=config.embed_dim, dropout=config.dropout,
                        num_groups=config.num_groups, scale_shift_norm=config.scale_shift_norm,
                        resampling=direction, norm_eps=config.norm_eps,
                        remat=config.remat, rngs=rngs)
    return Resample(channels, direction=direction, with_conv=config.conv_resample,
                    down_padding=config.downsample_padding, rngs=rngs)


def _apply_resampler(resampler: ResBlock | Resample, h: Array, emb: Array,
                     dropout_rngs: nnx.Rngs | None) -> Array:
    if isinstance(resampler, ResBlock):
        return resampler(h, emb, dropout_rngs=dropout_rngs)
    return resampler(h)


class DownLevel(nnx.Module):
    """One encoder level: ``num_res_blocks`` blocks, then (except last) a 2x downsampling.

    Returns the features after every block and after the downsampling: the skips.
    """

    def __init__(self, in_channels: int, out_channels: int, *, with_attention: bool,
                 downsample: bool, config: UNetConfig, rngs: nnx.Rngs):
        self.blocks = nnx.List([
            UNetBlock(in_channels if i == 0 else out_channels, out_channels,
                      with_attention=with_attention, config=config, rngs=rngs)
            for i in range(config.num_res_blocks)])
        self.downsample = _resampler(out_channels, "down", config, rngs) if downsample else None

    def __call__(self, h: Array, emb: Array, *, context: TextCondition | None,
                 dropout_rngs: nnx.Rngs | None) -> tuple[Array, list[Array]]:
        skips = []
        for block in self.blocks:
            h = block(h, emb, context=context, dropout_rngs=dropout_rngs)
            skips.append(h)
        if self.downsample is not None:
            h = _apply_resampler(self.downsample, h, emb, dropout_rngs)
            skips.append(h)
        return h, skips


class UpLevel(nnx.Module):
    """One decoder level: ``num_res_blocks + 1`` blocks, each on ``concat(h, skip)``, then
    (except the top level) a 2x upsampling."""

    def __init__(self, in_channels: int, skip_channels: list[int], out_channels: int, *,
                 with_attention: bool, upsample: bool, config: UNetConfig, rngs: nnx.Rngs):
        blocks = []
        for i, skip in enumerate(skip_channels):
            block_in = (in_channels if i == 0 else out_channels) + skip
            blocks.append(UNetBlock(block_in, out_channels, with_attention=with_attention,
                                    config=config, rngs=rngs))
        self.blocks = nnx.List(blocks)
        self.upsample = _resampler(out_channels, "up", config, rngs) if upsample else None

    def __call__(self, h: Array, skips: list[Array], emb: Array, *,
                 context: TextCondition | None, dropout_rngs: nnx.Rngs | None) -> Array:
        for block, skip in zip(self.blocks, skips, strict=True):
            h = block(jnp.concatenate([h, skip], axis=-1), emb, context=context,
                      dropout_rngs=dropout_rngs)
        if self.upsample is not None:
            h = _apply_resampler(self.upsample, h, emb, dropout_rngs)
        return h


class UNet(nnx.Module):
    """The DDPM / ADM UNet: ``UNet(config, rngs=...)(x_t, t, cond)``.

    See ``UNetConfig`` for the architecture; ``UNetConfig()`` is the 35.7M-parameter
    DDPM CIFAR-10 network of Ho et al. 2020.
    """

    def __init__(self, config: UNetConfig, *, rngs: nnx.Rngs):
        self.config = config
        base = config.base_channels
        self.time_embed = TimestepMLP(frequency_dim=base, embed_dim=config.embed_dim,
                                      cos_first=config.timestep_cos_first,
                                      freq_shift=config.timestep_freq_shift, rngs=rngs)
        self.class_embed = (Embedding(config.num_classes + 1, config.embed_dim,
                                      init=STANDARD_NORMAL, rngs=rngs)
                            if config.num_classes is not None else None)
        self.pooled_embed = (nnx.Linear(config.text_dim, config.embed_dim,
                                        kernel_init=XAVIER_UNIFORM, rngs=rngs)
                             if config.text_dim is not None else None)
        self.caption_encoder = (CaptionEncoder(config, rngs=rngs)
                                if config.caption_vocab_size is not None else None)
        self.input_conv = conv_layer(config.in_channels, base, 3, rngs=rngs)

        channels, skip_channels, down = base, [base], []
        last = len(config.channel_mults) - 1
        for level, mult in enumerate(config.channel_mults):
            out = base * mult
            down.append(DownLevel(
                channels, out, with_attention=level in config.attention_levels,
                downsample=level != last, config=config, rngs=rngs))
            channels = out
            skip_channels += [out] * (config.num_res_blocks + (level != last))
        self.down = nnx.List(down)

        self.middle = nnx.List([
            UNetBlock(channels, channels, with_attention=True, config=config, rngs=rngs),
            UNetBlock(channels, channels, with_attention=False, config=config, rngs=rngs)])

        up = []
        for level in reversed(range(len(config.channel_mults))):
            out = base * config.channel_mults[level]
            level_skips = [skip_channels.pop() for _ in range(config.num_res_blocks + 1)]
            up.append(UpLevel(
                channels, level_skips, out,
                with_attention=level in config.attention_levels,
                upsample=level != 0, config=config, rngs=rngs))
            channels = out
        self.up = nnx.List(up)

        self.output_norm = GroupNorm(channels, num_groups=config.num_groups,
                                     epsilon=config.norm_eps)
        self.output_conv = conv_layer(channels, config.out_channels, 3, zero_init=True, rngs=rngs)

    def _embed(self, t_B: Array, condition) -> Array:
        emb_BxE = self.time_embed(t_B)
        if self.class_embed is not None:
            emb_BxE = emb_BxE + self.class_embed(condition)
        if self.pooled_embed is not None:
            emb_BxE = emb_BxE + self.pooled_embed(condition.pooled.astype(emb_BxE.dtype))
        return emb_BxE

    def __call__(self, x_t: Array, t: Array, cond: Array | None = None, *,
                 dropout_key: PRNGKey | None = None) -> Array:
        """Predicts eps, x0 or v (and the variance interpolation if ``learned_variance``).

        Args:
          x_t: ``float [B, image_size, image_size, in_channels]`` noisy images.
          t: ``[B]`` timestep indices in ``[0, T)``; integer, or floating for
            fractional timesteps (same units).
          cond: ``int [B]`` class labels in ``[0, num_classes]`` (``num_classes`` = null
            class) for a class-conditional network; ``None`` means the null class.
            A :class:`~jaxdiff.models.TextCondition` of ``B`` captions for a
            text-conditioned network (``text_dim``). Must be ``None`` for an
            unconditional network.
          dropout_key: enables dropout (train mode); ``None`` is eval mode.

        Returns:
          ``[B, image_size, image_size, out_channels]`` in the parameters' dtype.
        """
        condition, dropout_rngs = image_denoiser_inputs(self.config, x_t, t, cond, dropout_key)
        if self.caption_encoder is not None:
            condition = self.caption_encoder(condition)
        context = condition if self.config.text_dim is not None else None

        emb = self._embed(t, condition)
        h = self.input_conv(x_t)
        skips = [h]
        for level in self.down:
            h, level_skips = level(h, emb, context=context, dropout_rngs=dropout_rngs)
            skips += level_skips
        for block in self.middle:
            h = block(h, emb, context=context, dropout_rngs=dropout_rngs)
        for level in self.up:
            level_skips = [skips.pop() for _ in level.blocks]
            h = level(h, level_skips, emb, context=context, dropout_rngs=dropout_rngs)
        return self.output_conv(jax.nn.silu(self.output_norm(h)))

