r"""The KL autoencoder of latent diffusion (Rombach et al. 2022, "High-Resolution Image
Synthesis with Latent Diffusion Models"; the Stable Diffusion VAE).

An encoder of residual blocks with stride-2 downsampling, a middle block (residual,
self-attention, residual) and a final convolution to the mean and log-variance of a diagonal
Gaussian posterior :math:`q(z \mid x)` over a ``latent_channels``-deep latent, ``2^(L-1)``
times smaller than the image; a mirror-image decoder with nearest-neighbour upsampling. The
blocks are the UNet's, unconditioned (:class:`~jaxdiff.models.unet.ResBlock` with no time
embedding); the downsampling pads like TensorFlow's ``"SAME"`` (one row and column after the
image), as the published VAEs were trained. ``AutoencoderKLConfig()`` is the published SD VAE
(``stabilityai/sd-vae-ft-ema``, 83,653,863 parameters).

The ``scaling_factor`` (LDM's 1 / std of the latents) is a constant of the trained model, not
applied by :meth:`AutoencoderKL.encode` / :meth:`AutoencoderKL.decode`: a latent diffusion
model trains on ``scaling_factor * z`` and decodes ``z_hat / scaling_factor``.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff._validation import check_divisible, check_floating, check_int
from jaxdiff.models.discriminator import PatchDiscriminator
from jaxdiff.models.normalization import GroupNorm
from jaxdiff.models.unet import Resample, ResBlock, SpatialAttention, conv_layer
from jaxdiff.typing import Array, PRNGKey

LOG_VARIANCE_RANGE = (-30.0, 20.0)
"""The posterior's log-variance is clipped to this range (LDM's
``DiagonalGaussianDistribution``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoencoderKLConfig:
    """Hyperparameters of :class:`AutoencoderKL`; the defaults are the SD VAE's.

    Attributes:
      in_channels: image channels (the decoder outputs as many).
      base_channels: channels of the first (full-resolution) level.
      channel_mults: channels of each level as multiples of ``base_channels``; the
        resolution halves between consecutive levels.
      num_res_blocks: residual blocks per encoder level (one more per decoder level).
      latent_channels: channels of the latent ``z``.
      num_groups: GroupNorm groups (must divide every level's channels).
      norm_eps: the epsilon of every GroupNorm.
      mid_attention: self-attention (one head) in the middle blocks.
      quant_conv: the 1x1 convolution after the encoder (on mean and log-variance) and
        before the decoder (on ``z``), as in LDM.
      scaling_factor: the latent scale a diffusion model on these latents uses
        (0.18215 for the SD VAE; for a newly trained autoencoder the data's 1 / std).
      discriminator_layers: with ``> 0``, the model also holds the
        :class:`~jaxdiff.models.discriminator.PatchDiscriminator` of adversarial training
        (``AutoencoderKL.discriminate``) with this many stride-2 layers; 0: none. A
        training-only part: :func:`without_discriminator` drops it.
      discriminator_channels: the discriminator's first width (LDM's ``ndf``, 64).
    """

    in_channels: int = 3
    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    latent_channels: int = 4
    num_groups: int = 32
    norm_eps: float = 1e-6
    mid_attention: bool = True
    quant_conv: bool = True
    scaling_factor: float = 0.18215
    discriminator_layers: int = 0
    discriminator_channels: int = 64

    def __post_init__(self):
        for name in ("in_channels", "base_channels", "num_res_blocks", "latent_channels",
                     "num_groups"):
            check_int(name, getattr(self, name))
        if not self.channel_mults:
            raise ValueError("channel_mults must name at least one level")
        for mult in self.channel_mults:
            check_divisible("base_channels * channel_mult", self.base_channels * mult,
                            "num_groups", self.num_groups)
        check_int("discriminator_layers", self.discriminator_layers, minimum=0)
        check_int("discriminator_channels", self.discriminator_channels)
        if self.discriminator_layers:
            check_divisible("discriminator_channels", self.discriminator_channels,
                            "num_groups", self.num_groups)
        if not self.norm_eps > 0 or not self.scaling_factor > 0:
            raise ValueError(f"norm_eps and scaling_factor must be > 0, got {self.norm_eps}, "
                             f"{self.scaling_factor}")

    @property
    def downsampling(self) -> int:
        """How many times smaller the latent is than the image (per side)."""
        return 2 ** (len(self.channel_mults) - 1)


def _block(in_channels: int, out_channels: int, config: AutoencoderKLConfig,
           rngs: nnx.Rngs) -> ResBlock:
    return ResBlock(in_channels, out_channels, embed_dim=None, dropout=0.0,
                    num_groups=config.num_groups, scale_shift_norm=False,
                    norm_eps=config.norm_eps, rngs=rngs)


class _Middle(nnx.Module):
    """Residual block, self-attention (one head), residual block."""

    def __init__(self, channels: int, config: AutoencoderKLConfig, rngs: nnx.Rngs):
        self.first = _block(channels, channels, config, rngs)
        self.attention = (SpatialAttention(channels, num_heads=1, num_groups=config.num_groups,
                                           norm_eps=config.norm_eps, rngs=rngs)
                          if config.mid_attention else None)
        self.second = _block(channels, channels, config, rngs)

    def __call__(self, h: Array) -> Array:
        h = self.first(h, None, dropout_rngs=None)
        if self.attention is not None:
            h = self.attention(h)
        return self.second(h, None, dropout_rngs=None)


class _Level(nnx.Module):
    """Residual blocks, then an optional 2x resampling."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, *, resample: str | None,
                 config: AutoencoderKLConfig, rngs: nnx.Rngs):
        self.blocks = nnx.List([_block(in_channels if i == 0 else out_channels, out_channels,
                                       config, rngs) for i in range(blocks)])
        self.resample = (None if resample is None else
                         Resample(out_channels, direction=resample, with_conv=True,
                                  down_padding=0, rngs=rngs))

    def __call__(self, h: Array) -> Array:
        for block in self.blocks:
            h = block(h, None, dropout_rngs=None)
        return h if self.resample is None else self.resample(h)


class Encoder(nnx.Module):
    """Image ``[B, H, W, C]`` -> mean and log-variance, ``2 * latent_channels`` channels."""

    def __init__(self, config: AutoencoderKLConfig, *, rngs: nnx.Rngs):
        widths = [config.base_channels * m for m in config.channel_mults]
        self.input_conv = conv_layer(config.in_channels, widths[0], 3, rngs=rngs)
        self.levels = nnx.List([
            _Level(widths[max(i - 1, 0)], width, config.num_res_blocks,
                   resample="down" if i < len(widths) - 1 else None, config=config, rngs=rngs)
            for i, width in enumerate(widths)])
        self.middle = _Middle(widths[-1], config, rngs)
        self.output_norm = GroupNorm(widths[-1], num_groups=config.num_groups,
                                     epsilon=config.norm_eps)
        self.output_conv = conv_layer(widths[-1], 2 * config.latent_channels, 3, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        h = self.input_conv(x)
        for level in self.levels:
            h = level(h)
        h = self.middle(h)
        return self.output_conv(jax.nn.silu(self.output_norm(h)))


class Decoder(nnx.Module):
    """Latent ``[B, h, w, latent_channels]`` -> image ``[B, H, W, C]``."""

    def __init__(self, config: AutoencoderKLConfig, *, rngs: nnx.Rngs):
        widths = [config.base_channels * m for m in config.channel_mults][::-1]
        self.input_conv = conv_layer(config.latent_channels, widths[0], 3, rngs=rngs)
        self.middle = _Middle(widths[0], config, rngs)
        self.levels = nnx.List([
            _Level(widths[max(i - 1, 0)], width, config.num_res_blocks + 1,
                   resample="up" if i < len(widths) - 1 else None, config=config, rngs=rngs)
            for i, width in enumerate(widths)])
        self.output_norm = GroupNorm(widths[-1], num_groups=config.num_groups,
                                     epsilon=config.norm_eps)
        self.output_conv = conv_layer(widths[-1], config.in_channels, 3, rngs=rngs)

    def __call__(self, z: Array) -> Array:
        h = self.middle(self.input_conv(z))
        for level in self.levels:
            h = level(h)
        return self.output_conv(jax.nn.silu(self.output_norm(h)))


class AutoencoderKL(nnx.Module):
    """``encode(x) -> (mean, log_variance)``, ``decode(z) -> x``; ``model(x)`` decodes the
    posterior mean (the reconstruction)."""

    def __init__(self, config: AutoencoderKLConfig, *, rngs: nnx.Rngs):
        self.config = config
        two_z, z = 2 * config.latent_channels, config.latent_channels
        self.encoder = Encoder(config, rngs=rngs)
        self.decoder = Decoder(config, rngs=rngs)
        self.quant_conv = conv_layer(two_z, two_z, 1, rngs=rngs) if config.quant_conv else None
        self.post_quant_conv = conv_layer(z, z, 1, rngs=rngs) if config.quant_conv else None
        self.discriminator = (PatchDiscriminator(
            config.in_channels, channels=config.discriminator_channels,
            layers=config.discriminator_layers, num_groups=config.num_groups, rngs=rngs)
            if config.discriminator_layers else None)

    def encode(self, x: Array) -> tuple[Array, Array]:
        """The posterior's ``(mean, log_variance)``, each ``[B, H / f, W / f, latent]`` (``f``:
        :attr:`AutoencoderKLConfig.downsampling`), the log-variance clipped to
        :data:`LOG_VARIANCE_RANGE`; ``x`` is ``float [B, H, W, in_channels]`` in [-1, 1]."""
        c = self.config
        check_floating("x", x, shape=(None, None, None, c.in_channels))
        for axis, name in ((1, "height"), (2, "width")):
            check_divisible(f"x's {name}", x.shape[axis], "the downsampling", c.downsampling)
        h = self.encoder(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        mean, log_variance = jnp.split(h, 2, axis=-1)
        return mean, jnp.clip(log_variance, *LOG_VARIANCE_RANGE)

    def decode(self, z: Array) -> Array:
        """The image ``[B, h * f, w * f, in_channels]`` of latents ``z`` ``[B, h, w, latent]``."""
        check_floating("z", z, shape=(None, None, None, self.config.latent_channels))
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def discriminate(self, x: Array) -> Array:
        """The patch discriminator's logits ``[B, h, w, 1]`` of images ``x`` (real: high)."""
        c = self.config
        if self.discriminator is None:
            raise ValueError("the autoencoder has no discriminator (discriminator_layers=0)")
        check_floating("x", x, shape=(None, None, None, c.in_channels))
        if min(x.shape[1:3]) // 2 ** c.discriminator_layers < 3:
            raise ValueError(f"x of {x.shape[1]}x{x.shape[2]} is too small for "
                             f"discriminator_layers={c.discriminator_layers}: each side over "
                             f"2**layers must be >= 3 for one patch logit")
        return self.discriminator(x)

    def __call__(self, x: Array, t=None, cond=None, *, dropout_key: PRNGKey | None = None):
        """The reconstruction ``decode(mean)`` of ``x`` (``t``, ``cond`` must be None: the
        signature is the other networks', so ``make_apply_fn`` serves it too)."""
        if t is not None or cond is not None or dropout_key is not None:
            raise ValueError("an autoencoder takes no timestep, condition or dropout key")
        return self.decode(self.encode(x)[0])


def without_discriminator(config: AutoencoderKLConfig, params: nnx.State):
    """``(config, params)`` of the autoencoder alone: its discriminator, a training-only
    part, dropped (what a diffusers ``AutoencoderKL`` holds)."""
    if not config.discriminator_layers:
        return config, params
    kept = nnx.State({k: v for k, v in params.items() if k != "discriminator"})
    return dataclasses.replace(config, discriminator_layers=0), kept


def posterior_sample(key: PRNGKey, mean: Array, log_variance: Array) -> Array:
    r""":math:`z = \mu + e^{\log\sigma^2 / 2}\,\epsilon`, a draw of :math:`q(z \mid x)`."""
    return mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape, mean.dtype)


def posterior_kl(mean: Array, log_variance: Array) -> Array:
    r""":math:`\mathrm{KL}(q(z \mid x) \,\|\, \mathcal N(0, I))
    = \tfrac12 \sum (\mu^2 + \sigma^2 - 1 - \log\sigma^2)` per example, ``[B]`` (nats)."""
    terms = jnp.square(mean) + jnp.exp(log_variance) - 1.0 - log_variance
    return 0.5 * jnp.sum(terms, axis=tuple(range(1, mean.ndim)))
