"""The blocks diffusers' ``UNet2DModel`` and ``AutoencoderKL`` share, as rules onto jaxdiff's
:class:`~jaxdiff.models.unet.ResBlock` and :class:`~jaxdiff.models.unet.SpatialAttention`."""

from jaxdiff.pretrained.tensors import Rule, conv, linear, norm, qkv


def resnet_rules(path: tuple, name: str, *, skip: bool, embedding: bool) -> list[Rule]:
    """diffusers' ``ResnetBlock2D`` ``name`` (with ``time_emb_proj`` when ``embedding``, a
    ``conv_shortcut`` when ``skip``) as the jaxdiff ``ResBlock`` at ``path``."""
    rules = (norm(path + ("input_norm",), f"{name}.norm1")
             + conv(path + ("input_conv",), f"{name}.conv1")
             + (linear(path + ("embed_projection",), f"{name}.time_emb_proj") if embedding
                else [])
             + norm(path + ("output_norm",), f"{name}.norm2")
             + conv(path + ("output_conv",), f"{name}.conv2"))
    return rules + (conv(path + ("skip",), f"{name}.conv_shortcut") if skip else [])


def attention_rules(path: tuple, name: str) -> list[Rule]:
    """diffusers' spatial ``Attention`` ``name`` (group norm, residual) as the jaxdiff
    ``SpatialAttention`` at ``path``."""
    return (norm(path + ("norm",), f"{name}.group_norm")
            + qkv(path + ("attention", "qkv"), tuple(f"{name}.to_{x}" for x in "qkv"))
            + linear(path + ("attention", "output"), f"{name}.to_out.0"))


LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
"""diffusers' attention tensor names before 0.15 (``AttentionBlock``), still in checkpoints
such as google/ddpm-cifar10-32 and the SD VAE files: old suffix -> today's."""


def rename_legacy(tensors: dict) -> dict:
    """``tensors`` with the legacy attention names (:data:`LEGACY_ATTENTION`) renamed."""
    renamed = {}
    for name, value in tensors.items():
        stem, _, leaf = name.rpartition(".")
        prefix, _, part = stem.rpartition(".")
        if ".attentions." in name and part in LEGACY_ATTENTION:
            name = f"{prefix}.{LEGACY_ATTENTION[part]}.{leaf}"
        renamed[name] = value
    return renamed
