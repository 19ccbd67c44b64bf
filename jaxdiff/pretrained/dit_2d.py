"""diffusers' ``DiTTransformer2DModel`` <-> jaxdiff's :class:`~jaxdiff.models.DiT`.

The class-conditional DiTs of ``facebook/DiT-XL-2-256`` / ``-512``, whose
``transformer/config.json`` still names the class ``Transformer2DModel`` (diffusers reads one
with ``norm_type="ada_norm_zero"`` as a ``DiTTransformer2DModel``). diffusers' DiT is the DiT
code's network but for two details, which a loaded config keeps so that it computes what
diffusers computes: the timestep sinusoid's frequency shift of 1 (``timestep_freq_shift``;
the DiT code has 0) and the MLP LayerNorm's ``norm_eps``, 1e-5 by default (``mlp_norm_eps``;
the DiT code has 1e-6). Every diffusers block holds its own copy of the timestep and class
embedder (``transformer_blocks.<i>.norm1.emb``; the final layer reads block 0's) where
jaxdiff's DiT has one; the converted DiT checkpoints give every copy the same tensors. Read,
each copy must equal block 0's (:attr:`~jaxdiff.pretrained.tensors.Rule.copies`); written,
the embedder goes to every block. What jaxdiff's DiT cannot be (an unsupported value of any
config field) is a ``ValueError`` naming the field and what is supported, never an
approximation.
"""

import dataclasses

from jaxdiff.models.dit import DiTConfig
from jaxdiff.pretrained.fields import read_fields
from jaxdiff.pretrained.tensors import Rule, conv, linear, qkv

CLASS_NAME = "DiTTransformer2DModel"
LEGACY_CLASS_NAME = "Transformer2DModel"

# field -> the one value jaxdiff's DiT has (a config may state it, or leave the default);
# diffusers drops out the MLP's hidden layer where jaxdiff drops out its output
_FIXED = {"dropout": 0.0, "attention_bias": True, "activation_fn": "gelu-approximate",
          "upcast_attention": False, "norm_type": "ada_norm_zero",
          "norm_elementwise_affine": False}
# the fields of Transformer2DModel that DiTTransformer2DModel does not have, at their values
# in a DiT (diffusers ignores them in a remapped config)
_LEGACY_FIXED = {"cross_attention_dim": None, "num_vector_embeds": None,
                 "use_linear_projection": False, "only_cross_attention": False,
                 "double_self_attention": False, "attention_type": "default",
                 "caption_channels": None, "interpolation_scale": None,
                 "use_additional_conditions": None}
# DiTTransformer2DModel's defaults for the fields a config leaves out (a remapped
# Transformer2DModel config gets them too); norm_num_groups is unused by a DiT
_DEFAULTS = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4,
             "out_channels": None, "num_layers": 28, "norm_num_groups": 32, "sample_size": 32,
             "patch_size": 2, "num_embeds_ada_norm": 1000, "norm_eps": 1e-5, **_FIXED}
# DiTConfig field -> the one value a DiTTransformer2DModel can have (dropout: see _FIXED)
_DIFFUSERS_ONLY = {"mlp_ratio": 4.0, "frequency_dim": 256, "timestep_freq_shift": 1.0,
                   "position_columns_first": True, "dropout": 0.0, "text_dim": None}


def _error(field: str, message: str) -> ValueError:
    return ValueError(f"{CLASS_NAME} config field {field!r}: {message}")


def _int(values: dict, field: str, minimum: int = 1) -> int:
    value = values[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(field, f"must be an int >= {minimum}, got {value!r}")
    return value


def jaxdiff_config(values: dict) -> DiTConfig:
    """The jaxdiff config of a ``DiTTransformer2DModel`` (or DiT ``Transformer2DModel``)
    ``config.json`` (a dict)."""
    fixed = dict(_FIXED)
    if values.get("_class_name") == LEGACY_CLASS_NAME:
        if values.get("norm_type") != "ada_norm_zero":
            raise _error("norm_type", f"a {LEGACY_CLASS_NAME} is a DiT only with "
                                      f"'ada_norm_zero', got {values.get('norm_type')!r}")
        fixed.update(_LEGACY_FIXED)
    v = read_fields(values, defaults=_DEFAULTS, fixed=fixed, error=_error, model="DiT")
    heads, head_dim, channels = (_int(v, f) for f in ("num_attention_heads",
                                                      "attention_head_dim", "in_channels"))
    out = v["out_channels"]
    if out not in (None, channels, 2 * channels):
        raise _error("out_channels", f"must be None, in_channels ({channels}) or twice it "
                                     f"(learned variance), got {out!r}")
    if not isinstance(v["norm_eps"], int | float) or not v["norm_eps"] > 0:
        raise _error("norm_eps", f"must be a number > 0, got {v['norm_eps']!r}")
    return DiTConfig(
        image_size=_int(v, "sample_size"), in_channels=channels,
        patch_size=_int(v, "patch_size"), hidden_size=heads * head_dim,
        depth=_int(v, "num_layers"), num_heads=heads,
        num_classes=_int(v, "num_embeds_ada_norm"), learned_variance=out == 2 * channels,
        timestep_freq_shift=1.0, mlp_norm_eps=float(v["norm_eps"]),
        position_columns_first=True)


def diffusers_config(config: DiTConfig) -> dict:
    """The ``DiTTransformer2DModel`` ``config.json`` of a jaxdiff DiT config; a
    ``ValueError`` names a jaxdiff field the diffusers model cannot express."""
    for field, value in _DIFFUSERS_ONLY.items():
        if getattr(config, field) != value:
            raise ValueError(f"DiTConfig.{field}={getattr(config, field)!r} has no "
                             f"{CLASS_NAME} equivalent; saving needs {field}={value!r}")
    if config.num_classes is None:
        raise ValueError(f"DiTConfig.num_classes=None has no {CLASS_NAME} equivalent (it is "
                         f"class-conditional)")
    return {"_class_name": CLASS_NAME, **_DEFAULTS,
            "num_attention_heads": config.num_heads,
            "attention_head_dim": config.hidden_size // config.num_heads,
            "in_channels": config.in_channels, "out_channels": config.out_channels,
            "num_layers": config.depth, "sample_size": config.image_size,
            "patch_size": config.patch_size, "num_embeds_ada_norm": config.num_classes,
            "norm_eps": config.mlp_norm_eps}


def _embedder(block: int) -> list[Rule]:
    """The timestep and class embedder from block ``block``'s copy."""
    name = f"transformer_blocks.{block}.norm1.emb"
    return (linear(("time_embed", "hidden"), f"{name}.timestep_embedder.linear_1")
            + linear(("time_embed", "output"), f"{name}.timestep_embedder.linear_2")
            + [Rule(("class_embed", "embedding"),
                    (f"{name}.class_embedder.embedding_table.weight",), "copy")])


def rules(config: DiTConfig) -> list[Rule]:
    """Every jaxdiff DiT parameter with the ``DiTTransformer2DModel`` tensors it is made of
    (the embedder: block 0's, the other blocks' as its copies)."""
    out = conv(("patch_embed",), "pos_embed.proj")
    out += [dataclasses.replace(rule, copies=tuple(other.names for other in others))
            for rule, *others in zip(*map(_embedder, range(config.depth)), strict=True)]
    for i in range(config.depth):
        name = f"transformer_blocks.{i}"
        out += (linear(("blocks", i, "modulation"), f"{name}.norm1.linear")
                + qkv(("blocks", i, "attention", "qkv"),
                      tuple(f"{name}.attn1.to_{x}" for x in "qkv"))
                + linear(("blocks", i, "attention", "output"), f"{name}.attn1.to_out.0")
                + linear(("blocks", i, "mlp_hidden"), f"{name}.ff.net.0.proj")
                + linear(("blocks", i, "mlp_output"), f"{name}.ff.net.2"))
    return (out + linear(("final_modulation",), "proj_out_1")
            + linear(("final_projection",), "proj_out_2"))


def rename_legacy(tensors: dict) -> dict:
    """``tensors``: DiT checkpoints have no legacy names."""
    return tensors
