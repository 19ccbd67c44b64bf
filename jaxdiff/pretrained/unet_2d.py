"""diffusers' ``UNet2DModel`` <-> jaxdiff's :class:`~jaxdiff.models.UNet`.

The DDPM / ADM UNets of ``google/ddpm-cifar10-32`` and ``google/ddpm-celebahq-256``: a
level is ``DownBlock2D`` / ``UpBlock2D`` or, with attention after every residual block,
``AttnDownBlock2D`` / ``AttnUpBlock2D`` (jaxdiff's ``attention_levels``); the middle is
``UNetMidBlock2D`` (residual, attention, residual); resampling by convolution. What jaxdiff's
UNet cannot be (an unsupported value of any config field) is a ``ValueError`` naming the
field and what is supported, never an approximation.
"""

from jaxdiff.models.unet import UNetConfig
from jaxdiff.pretrained.blocks import attention_rules, rename_legacy, resnet_rules
from jaxdiff.pretrained.fields import read_fields
from jaxdiff.pretrained.tensors import Rule, conv, linear, norm

CLASS_NAME = "UNet2DModel"

# field -> the one value jaxdiff's UNet has (a config may state it, or leave the default)
_FIXED = {"center_input_sample": False, "time_embedding_type": "positional",
          "mid_block_type": "UNetMidBlock2D", "mid_block_scale_factor": 1,
          "downsample_type": "conv", "upsample_type": "conv", "add_attention": True,
          "class_embed_type": None, "num_train_timesteps": None, "time_embedding_dim": None,
          # diffusers' class table has no null row for classifier-free guidance, jaxdiff's has
          "num_class_embeds": None}
# diffusers' defaults for the fields a config leaves out
_DEFAULTS = {"sample_size": None, "in_channels": 3, "out_channels": 3, "freq_shift": 0,
             "flip_sin_to_cos": True,
             "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                  "AttnDownBlock2D"),
             "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
             "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2,
             "downsample_padding": 1, "dropout": 0.0, "act_fn": "silu", "attention_head_dim": 8,
             "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
             "resnet_time_scale_shift": "default"}
_DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}
_UP = {"UpBlock2D": False, "AttnUpBlock2D": True}


def _error(field: str, message: str) -> ValueError:
    return ValueError(f"{CLASS_NAME} config field {field!r}: {message}")


def jaxdiff_config(values: dict) -> UNetConfig:
    """The jaxdiff config of a ``UNet2DModel`` ``config.json`` (a dict)."""
    v = read_fields(values, defaults=_DEFAULTS, fixed=_FIXED, error=_error, model="UNet")
    size = v["sample_size"]
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise _error("sample_size", f"jaxdiff's UNet takes square images, got {size}")
        size = size[0]
    if not isinstance(size, int):
        raise _error("sample_size", f"must be an int (the image size), got {size!r}")
    if v["act_fn"] not in ("silu", "swish"):
        raise _error("act_fn", f"jaxdiff's UNet supports only 'silu', got {v['act_fn']!r}")
    channels = tuple(v["block_out_channels"])
    base = channels[0]
    if any(c % base for c in channels):
        raise _error("block_out_channels", f"every level must be a multiple of the first "
                                           f"(channel_mults), got {list(channels)}")
    down, up = tuple(v["down_block_types"]), tuple(v["up_block_types"])
    for field, types, kinds in (("down_block_types", down, _DOWN), ("up_block_types", up, _UP)):
        if len(types) != len(channels) or any(t not in kinds for t in types):
            raise _error(field, f"must be {len(channels)} of {list(kinds)}, got {list(types)}")
    levels = tuple(i for i, t in enumerate(down) if _DOWN[t])
    if tuple(i for i, t in enumerate(reversed(up)) if _UP[t]) != levels:
        raise _error("up_block_types", f"must mirror down_block_types (jaxdiff's attention "
                                       f"levels are the same on both paths), got {list(up)} "
                                       f"for {list(down)}")
    out = v["out_channels"]
    if out not in (v["in_channels"], 2 * v["in_channels"]):
        raise _error("out_channels", f"must be in_channels ({v['in_channels']}) or twice it "
                                     f"(learned variance), got {out}")
    shift = v["resnet_time_scale_shift"]
    if shift not in ("default", "scale_shift"):
        raise _error("resnet_time_scale_shift", f"must be 'default' or 'scale_shift', got "
                                                f"{shift!r}")
    attn_groups = v["attn_norm_num_groups"]
    if not (attn_groups == v["norm_num_groups"] or (attn_groups is None and shift == "default")):
        raise _error("attn_norm_num_groups", f"jaxdiff's attention GroupNorm has "
                                             f"norm_num_groups = {v['norm_num_groups']} groups "
                                             f"(with scale_shift diffusers' middle attention has "
                                             f"none unless this is set), got {attn_groups!r}")
    if v["downsample_padding"] not in (0, 1):
        raise _error("downsample_padding", f"must be 0 or 1, got {v['downsample_padding']!r}")
    head_dim = v["attention_head_dim"]
    return UNetConfig(
        image_size=size, in_channels=v["in_channels"], base_channels=base,
        channel_mults=tuple(c // base for c in channels), num_res_blocks=v["layers_per_block"],
        attention_levels=levels, num_heads=1, head_channels=head_dim,
        dropout=float(v["dropout"]), num_groups=v["norm_num_groups"],
        scale_shift_norm=shift == "scale_shift", resblock_updown=False, conv_resample=True,
        num_classes=None,
        learned_variance=out == 2 * v["in_channels"], norm_eps=float(v["norm_eps"]),
        downsample_padding=v["downsample_padding"],
        timestep_cos_first=bool(v["flip_sin_to_cos"]),
        timestep_freq_shift=float(v["freq_shift"]))


def diffusers_config(config: UNetConfig) -> dict:
    """The ``UNet2DModel`` ``config.json`` of a jaxdiff UNet config; a ``ValueError`` names a
    jaxdiff field the diffusers model cannot express."""
    if config.text_dim is not None:
        raise ValueError(f"UNetConfig.text_dim={config.text_dim}: {CLASS_NAME} has no "
                         f"cross-attention (diffusers' UNet2DConditionModel is another "
                         f"architecture)")
    if config.resblock_updown:
        raise ValueError(f"UNetConfig.resblock_updown=True has no {CLASS_NAME} equivalent here "
                         f"(conv resampling only)")
    if config.num_classes is not None:
        raise ValueError(f"UNetConfig.num_classes={config.num_classes}: jaxdiff's class table "
                         f"has a null row for classifier-free guidance, {CLASS_NAME}'s has none")
    if not config.conv_resample:
        raise ValueError(f"UNetConfig.conv_resample=False has no {CLASS_NAME} equivalent "
                         f"(its DownBlock2D / UpBlock2D resample by convolution)")
    channels = [config.base_channels * m for m in config.channel_mults]
    head_dim = config.head_channels
    if head_dim is None:
        attended = [channels[i] for i in config.attention_levels] + [channels[-1]]
        dims = {c // config.num_heads for c in attended}
        if config.num_heads != 1 and len(dims) != 1:
            raise ValueError(f"UNetConfig.num_heads={config.num_heads} gives head widths "
                             f"{sorted(dims)} on the attended levels; diffusers has one "
                             f"attention_head_dim (set head_channels)")
        head_dim = None if config.num_heads == 1 else dims.pop()
    levels = range(len(channels))
    return {
        "_class_name": CLASS_NAME, **_FIXED, "sample_size": config.image_size,
        "in_channels": config.in_channels, "out_channels": config.out_channels,
        "freq_shift": config.timestep_freq_shift, "flip_sin_to_cos": config.timestep_cos_first,
        "down_block_types": ["AttnDownBlock2D" if i in config.attention_levels
                             else "DownBlock2D" for i in levels],
        "up_block_types": ["AttnUpBlock2D" if i in config.attention_levels else "UpBlock2D"
                           for i in reversed(levels)],
        "block_out_channels": channels, "layers_per_block": config.num_res_blocks,
        "downsample_padding": config.downsample_padding, "dropout": config.dropout,
        "act_fn": "silu", "attention_head_dim": head_dim, "norm_num_groups": config.num_groups,
        "attn_norm_num_groups": config.num_groups if config.scale_shift_norm else None,
        "norm_eps": config.norm_eps,
        "resnet_time_scale_shift": "scale_shift" if config.scale_shift_norm else "default"}


def _block(path: tuple, resnet: str, attention: str | None, in_ch: int, out_ch: int):
    rules = resnet_rules(path + ("residual",), resnet, skip=in_ch != out_ch, embedding=True)
    return rules + (attention_rules(path + ("attention",), attention) if attention else [])


def rules(config: UNetConfig) -> list[Rule]:
    """Every jaxdiff UNet parameter with the ``UNet2DModel`` tensors it is made of."""
    base, mults, n = config.base_channels, config.channel_mults, config.num_res_blocks
    out = (linear(("time_embed", "hidden"), "time_embedding.linear_1")
           + linear(("time_embed", "output"), "time_embedding.linear_2")
           + conv(("input_conv",), "conv_in"))
    channels, skips, last = base, [base], len(mults) - 1
    for level, mult in enumerate(mults):
        attend = level in config.attention_levels
        for i in range(n):
            name = f"down_blocks.{level}"
            out += _block(("down", level, "blocks", i), f"{name}.resnets.{i}",
                          f"{name}.attentions.{i}" if attend else None, channels, base * mult)
            channels = base * mult
        skips += [channels] * (n + (level != last))
        if level != last:
            out += conv(("down", level, "downsample", "conv"),
                        f"down_blocks.{level}.downsamplers.0.conv")
    out += (_block(("middle", 0), "mid_block.resnets.0", "mid_block.attentions.0", channels,
                   channels)
            + _block(("middle", 1), "mid_block.resnets.1", None, channels, channels))
    for index, level in enumerate(reversed(range(len(mults)))):
        attend, width = level in config.attention_levels, base * mults[level]
        name = f"up_blocks.{index}"
        for i in range(n + 1):
            out += _block(("up", index, "blocks", i), f"{name}.resnets.{i}",
                          f"{name}.attentions.{i}" if attend else None,
                          channels + skips.pop(), width)
            channels = width
        if level != 0:
            out += conv(("up", index, "upsample", "conv"), f"{name}.upsamplers.0.conv")
    return out + norm(("output_norm",), "conv_norm_out") + conv(("output_conv",), "conv_out")


__all__ = ["CLASS_NAME", "diffusers_config", "jaxdiff_config", "rename_legacy", "rules"]
