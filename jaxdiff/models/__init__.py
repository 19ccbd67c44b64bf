"""Networks for diffusion: Flax NNX modules and their functional (pure-function) face.

    import jaxdiff.models as jm
    model = jm.create("ddpm_cifar10", key=key)              # a paper's network, one line
    graphdef, params, rest = jm.init(jm.preset_config("dit_s2"), key=key)
    apply_fn = jm.make_apply_fn(graphdef, rest, train=True)
    prediction = apply_fn(params, x_t, t, labels, dropout_key)
    denoise_fn = jm.bind(apply_fn, params, dropout_key)    # denoise_fn(x_t, t, cond)

Images are NHWC float; timesteps ``[B]`` step indices; class labels ``int32 [B]`` with
the null class ``num_classes``; tokens ``int32 [B, L]`` -> logits ``float32 [B, L, V]``.
"""

from jaxdiff.models.attention import CAUSAL, BlockCausalMask, LayerKVCache
from jaxdiff.models.autoencoder import (
    AutoencoderKL,
    AutoencoderKLConfig,
    posterior_kl,
    posterior_sample,
    without_discriminator,
)
from jaxdiff.models.conditioning import CaptionTokens, TextCondition, drop_labels
from jaxdiff.models.dit import DiT, DiTConfig
from jaxdiff.models.functional import (
    Model,
    NetworkConfig,
    abstract_init,
    bind,
    build_model,
    cast_floating,
    count_params,
    init,
    make_apply_fn,
    make_autoencoder_fns,
    make_decode_fns,
    make_discriminator_fn,
)
from jaxdiff.models.presets import DIFFUSERS_PREFIX, PRESETS, create, preset_config
from jaxdiff.models.text_transformer import (
    KVCache,
    TextTransformer,
    TextTransformerConfig,
    TwoStream,
)
from jaxdiff.models.unet import UNet, UNetConfig

__all__ = [
    "DIFFUSERS_PREFIX",
    "PRESETS",
    "AutoencoderKL",
    "AutoencoderKLConfig",
    "CaptionTokens",
    "DiT",
    "DiTConfig",
    "BlockCausalMask",
    "CAUSAL",
    "KVCache",
    "LayerKVCache",
    "Model",
    "NetworkConfig",
    "TextCondition",
    "TextTransformer",
    "TextTransformerConfig",
    "TwoStream",
    "UNet",
    "UNetConfig",
    "abstract_init",
    "bind",
    "build_model",
    "cast_floating",
    "count_params",
    "create",
    "drop_labels",
    "init",
    "make_apply_fn",
    "make_autoencoder_fns",
    "make_decode_fns",
    "make_discriminator_fn",
    "posterior_kl",
    "posterior_sample",
    "preset_config",
    "without_discriminator",
]
