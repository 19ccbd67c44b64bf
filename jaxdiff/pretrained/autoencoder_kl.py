"""diffusers' ``AutoencoderKL`` <-> jaxdiff's :class:`~jaxdiff.models.AutoencoderKL`.

The KL autoencoders of Stable Diffusion (``stabilityai/sd-vae-ft-ema`` / ``-mse``): every level
``DownEncoderBlock2D`` / ``UpDecoderBlock2D``, the middle block with or without attention, the
quant convolutions. A config field jaxdiff cannot honour is a ``ValueError`` naming it.
``sample_size`` (diffusers' tiling threshold, tiling being off by default) and
``force_upcast`` (a half-precision pipeline's flag; jaxdiff's autoencoder runs in its
parameters' float32) do not change what the model computes.
"""

from jaxdiff.models.autoencoder import AutoencoderKLConfig
from jaxdiff.pretrained.blocks import attention_rules, rename_legacy, resnet_rules
from jaxdiff.pretrained.fields import read_fields
from jaxdiff.pretrained.tensors import Rule, conv, norm

CLASS_NAME = "AutoencoderKL"

_FIXED = {"act_fn": "silu", "shift_factor": None, "latents_mean": None, "latents_std": None}
_ACTIVATIONS = {"swish": "silu"}   # diffusers' other name of SiLU
_DEFAULTS = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",),
             "up_block_types": ("UpDecoderBlock2D",), "block_out_channels": (64,),
             "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 32,
             "sample_size": 32, "scaling_factor": 0.18215, "force_upcast": True,
             "use_quant_conv": True, "use_post_quant_conv": True,
             "mid_block_add_attention": True}


def _error(field: str, message: str) -> ValueError:
    return ValueError(f"{CLASS_NAME} config field {field!r}: {message}")


def jaxdiff_config(values: dict) -> AutoencoderKLConfig:
    """The jaxdiff config of an ``AutoencoderKL`` ``config.json`` (a dict)."""
    v = read_fields({**values, "act_fn": _ACTIVATIONS.get(values.get("act_fn"),
                                                          values.get("act_fn", "silu"))},
                    defaults=_DEFAULTS, fixed=_FIXED, error=_error, model="AutoencoderKL")
    channels = tuple(v["block_out_channels"])
    for field, kind in (("down_block_types", "DownEncoderBlock2D"),
                        ("up_block_types", "UpDecoderBlock2D")):
        if list(v[field]) != [kind] * len(channels):
            raise _error(field, f"must be {len(channels)} x {kind!r}, got {list(v[field])}")
    if v["out_channels"] != v["in_channels"]:
        raise _error("out_channels", f"must equal in_channels ({v['in_channels']}), got "
                                     f"{v['out_channels']}")
    if v["use_quant_conv"] != v["use_post_quant_conv"]:
        raise _error("use_post_quant_conv", "jaxdiff has both quant convolutions or neither; "
                                            "use_quant_conv must equal it")
    base = channels[0]
    if any(c % base for c in channels):
        raise _error("block_out_channels", f"every level must be a multiple of the first "
                                           f"(channel_mults), got {list(channels)}")
    return AutoencoderKLConfig(
        in_channels=v["in_channels"], base_channels=base,
        channel_mults=tuple(c // base for c in channels), num_res_blocks=v["layers_per_block"],
        latent_channels=v["latent_channels"], num_groups=v["norm_num_groups"],
        mid_attention=bool(v["mid_block_add_attention"]), quant_conv=bool(v["use_quant_conv"]),
        scaling_factor=float(v["scaling_factor"]))


def diffusers_config(config: AutoencoderKLConfig) -> dict:
    """The ``AutoencoderKL`` ``config.json`` of a jaxdiff autoencoder config."""
    if config.discriminator_layers:
        raise ValueError(f"AutoencoderKLConfig.discriminator_layers="
                         f"{config.discriminator_layers}: the discriminator is a training-only "
                         f"part with no {CLASS_NAME} equivalent; save "
                         f"jaxdiff.models.without_discriminator(config, params)")
    if config.norm_eps != 1e-6:
        raise ValueError(f"AutoencoderKLConfig.norm_eps={config.norm_eps} has no {CLASS_NAME} "
                         f"equivalent (its GroupNorms have eps 1e-6)")
    levels = len(config.channel_mults)
    return {"_class_name": CLASS_NAME, **_FIXED, "in_channels": config.in_channels,
            "out_channels": config.in_channels,
            "down_block_types": ["DownEncoderBlock2D"] * levels,
            "up_block_types": ["UpDecoderBlock2D"] * levels,
            "block_out_channels": [config.base_channels * m for m in config.channel_mults],
            "layers_per_block": config.num_res_blocks,
            "latent_channels": config.latent_channels, "norm_num_groups": config.num_groups,
            "scaling_factor": config.scaling_factor, "use_quant_conv": config.quant_conv,
            "use_post_quant_conv": config.quant_conv,
            "mid_block_add_attention": config.mid_attention}


def _middle(path: tuple, name: str, config: AutoencoderKLConfig) -> list[Rule]:
    rules = (resnet_rules(path + ("first",), f"{name}.resnets.0", skip=False, embedding=False)
             + resnet_rules(path + ("second",), f"{name}.resnets.1", skip=False,
                            embedding=False))
    if config.mid_attention:
        rules += attention_rules(path + ("attention",), f"{name}.attentions.0")
    return rules


def _levels(side: str, blocks: str, widths: list[int], resnets: int, resampler: str):
    rules, width = [], widths[0]
    for i, out in enumerate(widths):
        for j in range(resnets):
            rules += resnet_rules((side, "levels", i, "blocks", j),
                                  f"{side}.{blocks}.{i}.resnets.{j}", skip=width != out,
                                  embedding=False)
            width = out
        if i < len(widths) - 1:
            rules += conv((side, "levels", i, "resample", "conv"),
                          f"{side}.{blocks}.{i}.{resampler}.0.conv")
    return rules


def rules(config: AutoencoderKLConfig) -> list[Rule]:
    """Every jaxdiff autoencoder parameter with the ``AutoencoderKL`` tensors it is made of."""
    widths = [config.base_channels * m for m in config.channel_mults]
    out = []
    for side, blocks, level_widths, resnets, resampler in (
            ("encoder", "down_blocks", widths, config.num_res_blocks, "downsamplers"),
            ("decoder", "up_blocks", widths[::-1], config.num_res_blocks + 1, "upsamplers")):
        out += (conv((side, "input_conv"), f"{side}.conv_in")
                + _levels(side, blocks, level_widths, resnets, resampler)
                + _middle((side, "middle"), f"{side}.mid_block", config)
                + norm((side, "output_norm"), f"{side}.conv_norm_out")
                + conv((side, "output_conv"), f"{side}.conv_out"))
    if config.quant_conv:
        out += conv(("quant_conv",), "quant_conv") + conv(("post_quant_conv",), "post_quant_conv")
    return out


__all__ = ["CLASS_NAME", "diffusers_config", "jaxdiff_config", "rename_legacy", "rules"]
