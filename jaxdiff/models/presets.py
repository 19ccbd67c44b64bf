"""Named configurations of published networks, and small ones for CPU.

``create("ddpm_cifar10", key=key)`` returns the paper's network in one line; keyword
overrides replace config fields (``create("dit_s2", key=key, num_classes=10)``).

Parameter counts (``count_params``):

* ``ddpm_cifar10``: 35,746,307, Ho et al. 2020 (35.7M).
* ``sd_vae``: 83,653,863, the Stable Diffusion VAE (``stabilityai/sd-vae-ft-ema``).
* ``dit_s2`` / ``dit_b2`` / ``dit_xl2``: 32.87M / 130.3M / 674.8M trainable, Peebles &
  Xie 2023 Table 1 (33M / 130M / 675M; the paper's counts also include the fixed 2D
  position table, 256 x width).
"""

import dataclasses

from flax import nnx

from jaxdiff.models.autoencoder import AutoencoderKLConfig
from jaxdiff.models.dit import DiTConfig
from jaxdiff.models.functional import Model, NetworkConfig, init
from jaxdiff.models.text_transformer import TextTransformerConfig
from jaxdiff.models.unet import UNetConfig
from jaxdiff.typing import PRNGKey

_TINY_TEXT = TextTransformerConfig(vocab_size=257, max_length=64, hidden_size=64, depth=2,
                                   num_heads=4, dropout=0.0, cond_dim=64, frequency_dim=64)

PRESETS: dict[str, NetworkConfig] = {
    # Ho et al. 2020, App. B: CIFAR-10 32x32, with their code's TF "SAME" downsampling pad
    # and sines-first time features (google/ddpm-cifar10-32).
    "ddpm_cifar10": UNetConfig(downsample_padding=0, timestep_cos_first=False,
                               timestep_freq_shift=1.0),
    # Peebles & Xie 2023, Table 1, ImageNet 256x256 in the 32x32x4 VAE latent space.
    "dit_s2": DiTConfig(hidden_size=384, depth=12, num_heads=6),
    "dit_b2": DiTConfig(hidden_size=768, depth=12, num_heads=12),
    "dit_xl2": DiTConfig(hidden_size=1152, depth=28, num_heads=16),
    # Rombach et al. 2022: the KL-f8 autoencoder of Stable Diffusion (256x256 -> 32x32x4).
    "sd_vae": AutoencoderKLConfig(),
    # Small networks that train in minutes on a CPU (16x16 RGB images).
    "unet_tiny": UNetConfig(image_size=16, base_channels=32, channel_mults=(1, 2),
                            num_res_blocks=1, attention_levels=(1,), num_heads=2,
                            dropout=0.0, num_groups=8),
    "dit_tiny": DiTConfig(image_size=16, in_channels=3, patch_size=2, hidden_size=64,
                          depth=2, num_heads=4, num_classes=None, learned_variance=False,
                          frequency_dim=64),
    "vae_tiny": AutoencoderKLConfig(base_channels=32, channel_mults=(1, 2, 2),
                                    num_res_blocks=1, num_groups=8, scaling_factor=1.0),
    # Byte-level text (ids 0..255, id 256 free for [MASK]), 64 tokens.
    "text_tiny": _TINY_TEXT,
    "text_causal_tiny": dataclasses.replace(_TINY_TEXT, causal=True, time_conditioning=False),
}


DIFFUSERS_PREFIX = "diffusers:"
"""``preset_config("diffusers:DIR")`` is the network of the diffusers model folder (or
pipeline folder) ``DIR`` (:func:`jaxdiff.pretrained.load_config`)."""


def preset_config(name: str, **overrides) -> NetworkConfig:
    """The config named ``name`` (a key of :data:`PRESETS`, or ``"diffusers:DIR"``) with
    ``overrides`` replacing its fields."""
    if name.startswith(DIFFUSERS_PREFIX):
        from jaxdiff.pretrained import load_config  # pretrained builds on the models

        return dataclasses.replace(load_config(name[len(DIFFUSERS_PREFIX):]), **overrides)
    if name not in PRESETS:
        raise ValueError(f"name must be one of {sorted(PRESETS)} or 'diffusers:<folder>', "
                         f"got {name!r}")
    return dataclasses.replace(PRESETS[name], **overrides)


def create(name: str, *, key: PRNGKey, **overrides) -> Model:
    """The NNX model of preset ``name`` (with ``overrides``), initialised from ``key``.

    Initialisation is jitted (see ``init``); ``nnx.split(model, nnx.Param, ...)`` gives
    back the functional triple.
    """
    return nnx.merge(*init(preset_config(name, **overrides), key=key))
