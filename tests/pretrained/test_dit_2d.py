"""diffusers ``DiTTransformer2DModel`` checkpoints in jaxdiff: outputs equal diffusers' on the
same inputs and weights (float32), the round trip is exact, bad checkpoints are named errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import models as jm
from jaxdiff import pretrained
from jaxdiff.pretrained import folder as folder_io
from tests.models.util import random_params
from tests.pretrained.reference import (
    assert_round_trip,
    edit_folder,
    relative_error,
    saved_model,
)

# facebook/DiT-XL-2-256's transformer/config.json (written by diffusers 0.12, when the class
# was Transformer2DModel; it predates norm_eps, so diffusers' default 1e-5 applies)
DIT_XL_2_256 = {
    "_class_name": "Transformer2DModel", "_diffusers_version": "0.12.0.dev0",
    "activation_fn": "gelu-approximate", "attention_bias": True, "attention_head_dim": 72,
    "cross_attention_dim": None, "dropout": 0.0, "in_channels": 4,
    "norm_elementwise_affine": False, "norm_num_groups": 32, "norm_type": "ada_norm_zero",
    "num_attention_heads": 16, "num_embeds_ada_norm": 1000, "num_layers": 28,
    "num_vector_embeds": None, "only_cross_attention": False, "out_channels": 8,
    "patch_size": 2, "sample_size": 32, "upcast_attention": False,
    "use_linear_projection": False}
# its fields that DiTTransformer2DModel does not have (Transformer2DModel's)
_LEGACY_FIELDS = ("cross_attention_dim", "num_vector_embeds", "only_cross_attention",
                  "use_linear_projection")

SMALL = dict(   # learned sigma, diffusers' default norm_eps
    num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
    sample_size=8, patch_size=2, num_embeds_ada_norm=10)
SMALL_P4 = dict(   # no learned sigma, 4x4 patches, the DiT code's MLP LayerNorm eps
    num_attention_heads=4, attention_head_dim=8, in_channels=3, out_channels=None,
    num_layers=3, sample_size=16, patch_size=4, num_embeds_ada_norm=5, norm_eps=1e-6)
CONFIGS = {"small": SMALL, "small_p4": SMALL_P4}
# a jaxdiff DiT that diffusers can be: diffusers' timestep shift
JAXDIFF_SMALL = jm.DiTConfig(image_size=8, in_channels=2, patch_size=2, hidden_size=32, depth=2,
                             num_heads=4, num_classes=3, timestep_freq_shift=1.0)


def _tie_embedders(model):
    """Every block's embedder made block 0's, as in the converted DiT checkpoints."""
    for block in model.transformer_blocks[1:]:
        block.norm1.emb.load_state_dict(model.transformer_blocks[0].norm1.emb.state_dict())


def _saved_dit(folder, **config):
    return saved_model("DiTTransformer2DModel", folder, edit=_tie_embedders, **config)


def _compare(model, config, params, labels, *, timesteps=(0, 17, 500, 999), seed=0):
    """jaxdiff's and diffusers' outputs at several timesteps (the error relative to scale)."""
    import torch

    rng = np.random.default_rng(seed)
    batch = len(labels)
    shape = (batch, config.image_size, config.image_size, config.in_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    graphdef, _, rest = jm.abstract_init(config)
    apply_fn = jax.jit(jm.make_apply_fn(graphdef, rest))
    errors = []
    for t in timesteps:
        ts = np.full((batch,), t, np.int64)
        with torch.no_grad():
            want = model(torch.from_numpy(x.transpose(0, 3, 1, 2)), timestep=torch.from_numpy(ts),
                         class_labels=torch.from_numpy(labels)).sample.numpy()
        got = np.asarray(apply_fn(params, jnp.asarray(x), jnp.asarray(ts, jnp.int32),
                                  jnp.asarray(labels, jnp.int32)))
        errors.append(relative_error(got, want.transpose(0, 2, 3, 1)))
    return max(errors)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_loaded_dit_computes_what_diffusers_computes(name, tmp_path):
    values = CONFIGS[name]
    model = _saved_dit(tmp_path, **values)
    config, params = pretrained.load_model(tmp_path)
    null = values["num_embeds_ada_norm"]
    assert _compare(model, config, params, np.array([1, null - 1, null])) <= 1e-5
    assert config.learned_variance == (name == "small") and config.num_classes == null


def test_the_published_dit_xl_2_256_config_computes_what_diffusers_computes(tmp_path):
    """DiT-XL/2's real sizes (28 blocks of width 1152, 16 heads, 32x32x4 latents, 1000
    classes, learned sigma), read from the published Transformer2DModel config.json."""
    sizes = {k: v for k, v in DIT_XL_2_256.items()
             if not k.startswith("_") and k not in _LEGACY_FIELDS}
    model = _saved_dit(tmp_path, **sizes)
    (tmp_path / folder_io.CONFIG_NAME).write_text(json.dumps(DIT_XL_2_256))
    config, params = pretrained.load_model(tmp_path)
    assert config == pretrained.dit_2d.jaxdiff_config(DIT_XL_2_256)
    assert sum(p.numel() for p in model.parameters()) == 749_826_464
    assert jm.count_params(params) == 674_834_720   # less the 27 copies of the embedder
    assert _compare(model, config, params, np.array([207, 1000]), timesteps=(0, 500, 999)) <= 1e-5


def test_a_transformer2dmodel_config_reads_as_diffusers_reads_it(tmp_path):
    """diffusers reads a Transformer2DModel config with norm_type "ada_norm_zero" as a
    DiTTransformer2DModel (its other fields at their inert values); so does jaxdiff."""
    import diffusers

    _saved_dit(tmp_path, **SMALL)
    legacy = {k: DIT_XL_2_256[k] for k in ("_class_name", *_LEGACY_FIELDS)}
    edit_folder(tmp_path, config=lambda c: {**c, **legacy})
    model = diffusers.Transformer2DModel.from_pretrained(tmp_path).eval()
    assert type(model) is diffusers.DiTTransformer2DModel
    config, params = pretrained.load_model(tmp_path)
    assert _compare(model, config, params, np.array([3, 10])) <= 1e-5


def test_the_dit_xl2_preset_is_facebook_dit_xl_2_256():
    """The published config reads as jaxdiff's preset but for diffusers' timestep shift and
    MLP LayerNorm eps (the DiT code has 0 and 1e-6): 674,834,720 parameters (diffusers'
    749,826,464 less the 27 copies of the embedder)."""
    config = pretrained.dit_2d.jaxdiff_config(DIT_XL_2_256)
    assert config == jm.preset_config("dit_xl2", timestep_freq_shift=1.0, mlp_norm_eps=1e-5)
    assert jm.count_params(jm.abstract_init(config)[1]) == 674_834_720


def test_export_then_import_is_bit_exact_and_diffusers_reads_it(tmp_path):
    _saved_dit(tmp_path / "a", **SMALL_P4)
    config, params = assert_round_trip(tmp_path / "a", tmp_path / "b")
    import diffusers
    reread = diffusers.DiTTransformer2DModel.from_pretrained(tmp_path / "b").eval()
    assert _compare(reread, config, params, np.array([0, 5])) <= 1e-5


def test_a_jaxdiff_dit_saves_as_a_diffusers_dit_with_the_same_outputs(tmp_path):
    """A freshly initialised jaxdiff DiT with diffusers' timestep shift exported: diffusers
    computes the same function; the DiT code's shift of 0 has no diffusers equivalent."""
    import diffusers

    config = JAXDIFF_SMALL
    params = random_params(jm.abstract_init(config)[1])   # zero init would hide errors
    pretrained.save_model(tmp_path, config, params)
    model = diffusers.DiTTransformer2DModel.from_pretrained(tmp_path).eval()
    assert _compare(model, config, params, np.array([2, 3])) <= 1e-5


@pytest.mark.parametrize("overrides, match", [
    (dict(timestep_freq_shift=0.0), r"DiTConfig.timestep_freq_shift=0.0 has no "
                                    r"DiTTransformer2DModel equivalent; saving needs "
                                    r"timestep_freq_shift=1.0"),
    (dict(position_columns_first=False), r"DiTConfig.position_columns_first=False"),
    (dict(dropout=0.1), r"DiTConfig.dropout=0.1"),
    (dict(num_classes=None), r"DiTConfig.num_classes=None"),
])
def test_a_dit_diffusers_cannot_express_is_named(tmp_path, overrides, match):
    config = dataclasses.replace(JAXDIFF_SMALL, **overrides)
    with pytest.raises(ValueError, match=match):
        pretrained.save_model(tmp_path, config, None)


_LABELS = "norm1.emb.class_embedder.embedding_table.weight"


@pytest.mark.parametrize("edit, match", [
    (dict(tensors=lambda t: {k: v for k, v in t.items() if k != "proj_out_2.bias"}),
     r"lacks 1 tensor\(s\) the config needs: \['proj_out_2.bias'\]"),
    (dict(tensors=lambda t: {k: v for k, v in t.items() if k != f"transformer_blocks.1.{_LABELS}"}),
     rf"lacks 1 tensor\(s\) the config needs: \['transformer_blocks.1.{_LABELS}'\]"),
    (dict(tensors=lambda t: {**t, "pos_embed.proj.weight": t["pos_embed.proj.weight"][:, :2]}),
     r"tensor 'pos_embed.proj.weight' has shape \(16, 2, 2, 2\), the config needs "
     r"\(16, 4, 2, 2\)"),
    (dict(tensors=lambda t: {**t, "transformer_blocks.2.norm1.linear.weight":
                             t["transformer_blocks.1.norm1.linear.weight"]}),
     r"has 1 tensor\(s\) its config does not describe: "
     r"\['transformer_blocks.2.norm1.linear.weight'\]"),
    (dict(tensors=lambda t: {**t, f"transformer_blocks.1.{_LABELS}":
                             t[f"transformer_blocks.1.{_LABELS}"] + 1e-3}),
     rf"tensor 'transformer_blocks.1.{_LABELS}' differs from 'transformer_blocks.0.{_LABELS}'; "
     r"jaxdiff has one parameter class_embed.embedding for both"),
    (dict(config=lambda c: {**c, "_class_name": "UVit2DModel"}),
     r"_class_name must be one of \[.*'DiTTransformer2DModel', 'Transformer2DModel'.*\], "
     r"got 'UVit2DModel'"),
    (dict(config=lambda c: {**c, "caption_channels": None}),
     r"field 'caption_channels': is not supported by jaxdiff's DiT"),
    (dict(config=lambda c: {**c, "activation_fn": "gelu"}),
     r"field 'activation_fn': jaxdiff's DiT supports only 'gelu-approximate', got 'gelu'"),
    (dict(config=lambda c: {**c, "norm_elementwise_affine": True}),
     r"field 'norm_elementwise_affine': jaxdiff's DiT supports only False"),
    (dict(config=lambda c: {**c, "dropout": 0.1}),
     r"field 'dropout': jaxdiff's DiT supports only 0.0, got 0.1"),
    (dict(config=lambda c: {**c, "out_channels": 5}),
     r"field 'out_channels': must be None, in_channels \(4\) or twice it"),
    (dict(config=lambda c: {**c, "num_embeds_ada_norm": None}),
     r"field 'num_embeds_ada_norm': must be an int >= 1, got None"),
    (dict(config=lambda c: {**c, "_class_name": "Transformer2DModel", "norm_type": "layer_norm"}),
     r"field 'norm_type': a Transformer2DModel is a DiT only with 'ada_norm_zero'"),
    (dict(config=lambda c: {**c, "_class_name": "Transformer2DModel", "cross_attention_dim": 64}),
     r"field 'cross_attention_dim': jaxdiff's DiT supports only None, got 64"),
])
def test_a_bad_checkpoint_names_the_tensor_or_field(tmp_path, edit, match):
    _saved_dit(tmp_path, **SMALL)
    edit_folder(tmp_path, **edit)
    with pytest.raises(ValueError, match=match):
        pretrained.load_model(tmp_path)
