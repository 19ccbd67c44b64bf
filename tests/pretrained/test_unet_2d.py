"""diffusers ``UNet2DModel`` checkpoints in jaxdiff: outputs equal diffusers' on the same
inputs and weights (float32), the round trip is exact, bad checkpoints are named errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxdiff import models as jm
from jaxdiff import pretrained
from jaxdiff.pretrained import folder as folder_io
from tests.models.util import random_params
from tests.pretrained.reference import (
    assert_round_trip,
    edit_folder,
    relative_error,
    require,
    saved_model,
)

# google/ddpm-cifar10-32's config.json (the Hub repository's, written by diffusers 0.1)
DDPM_CIFAR10 = {
    "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}

SMALL_ATTENTION = dict(   # diffusers' defaults elsewhere (cos first, no shift, padding 1)
    sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64),
    layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8)
SMALL_ADM = dict(   # no attention levels, FiLM, learned variance, DDPM's time features
    sample_size=8, in_channels=2, out_channels=4, block_out_channels=(16, 32, 32),
    layers_per_block=2, down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
    norm_num_groups=4, attention_head_dim=None, resnet_time_scale_shift="scale_shift",
    attn_norm_num_groups=4, downsample_padding=0, flip_sin_to_cos=False,
    freq_shift=1, norm_eps=1e-6)
CONFIGS = {"small_attention": SMALL_ATTENTION, "small_adm": SMALL_ADM,
           "ddpm_cifar10": {k: v for k, v in DDPM_CIFAR10.items() if k != "_class_name"}}


def _compare(model, config, params, *, batch: int, seed: int = 0, labels=None):
    """jaxdiff's and diffusers' outputs at several timesteps (the error relative to scale)."""
    import torch

    rng = np.random.default_rng(seed)
    shape = (batch, config.image_size, config.image_size, config.in_channels)
    x = rng.standard_normal(shape).astype(np.float32)
    graphdef, _, rest = jm.abstract_init(config)
    apply_fn = jax.jit(jm.make_apply_fn(graphdef, rest))
    errors = []
    for t in (0, 17, 500, 999):
        ts = np.full((batch,), t, np.int64)
        with torch.no_grad():
            want = model(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(ts),
                         class_labels=None if labels is None else torch.from_numpy(labels)
                         ).sample.numpy().transpose(0, 2, 3, 1)
        got = np.asarray(apply_fn(params, jnp.asarray(x), jnp.asarray(ts, jnp.int32),
                                  None if labels is None else jnp.asarray(labels, jnp.int32)))
        errors.append(relative_error(got, want))
    return max(errors)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_loaded_unet_computes_what_diffusers_computes(name, tmp_path):
    batch = 1 if name == "ddpm_cifar10" else 3
    model = saved_model("UNet2DModel", tmp_path, **CONFIGS[name])
    config, params = pretrained.load_model(tmp_path)
    assert _compare(model, config, params, batch=batch) <= 1e-5
    if name == "small_adm":
        assert config.learned_variance and config.scale_shift_norm


def test_the_ddpm_cifar10_preset_is_google_ddpm_cifar10_32():
    """The published config reads as jaxdiff's preset: the same network, 35,746,307 parameters
    (Ho et al. 2020's 35.7M)."""
    config = pretrained.unet_2d.jaxdiff_config(DDPM_CIFAR10)
    assert config == jm.preset_config("ddpm_cifar10", dropout=0.0)
    assert jm.count_params(jm.abstract_init(config)[1]) == 35_746_307


def test_export_then_import_is_bit_exact_and_diffusers_reads_it(tmp_path):
    saved_model("UNet2DModel", tmp_path / "a", **SMALL_ADM)
    config, params = assert_round_trip(tmp_path / "a", tmp_path / "b")
    import diffusers
    reread = diffusers.UNet2DModel.from_pretrained(tmp_path / "b").eval()
    assert _compare(reread, config, params, batch=2) <= 1e-5


def test_a_jaxdiff_unet_saves_as_a_diffusers_unet_with_the_same_outputs(tmp_path):
    """A freshly initialised jaxdiff UNet (multi-head attention by head width, two attention
    levels) exported: diffusers computes the same function."""
    import diffusers

    config = jm.UNetConfig(image_size=8, in_channels=3, base_channels=16, channel_mults=(1, 2),
                           num_res_blocks=1, attention_levels=(0, 1), head_channels=8,
                           dropout=0.0, num_groups=4)
    params = random_params(jm.abstract_init(config)[1])   # zero init would hide errors
    pretrained.save_model(tmp_path, config, params)
    model = diffusers.UNet2DModel.from_pretrained(tmp_path).eval()
    assert _compare(model, config, params, batch=2) <= 1e-5


def test_legacy_attention_names_load_as_the_same_weights(tmp_path):
    """Checkpoints written before diffusers 0.15 (google/ddpm-cifar10-32) name the attention
    query / key / value / proj_attn."""
    saved_model("UNet2DModel", tmp_path, **SMALL_ATTENTION)
    _, params = pretrained.load_model(tmp_path)
    file = tmp_path / folder_io.WEIGHTS_NAME
    legacy = {name.replace("to_q.", "query.").replace("to_k.", "key.").replace(
        "to_v.", "value.").replace("to_out.0.", "proj_attn."): value
        for name, value in load_file(file).items()}
    assert any("proj_attn" in name for name in legacy)
    save_file(legacy, file)
    _, again = pretrained.load_model(tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("edit, match", [
    (dict(tensors=lambda t: {k: v for k, v in t.items() if k != "conv_in.bias"}),
     r"lacks 1 tensor\(s\) the config needs: \['conv_in.bias'\]"),
    (dict(tensors=lambda t: {**t, "conv_out.weight": t["conv_out.weight"][:, :1]}),
     r"tensor 'conv_out.weight' has shape \(3, 1, 3, 3\), the config needs \(3, 32, 3, 3\)"),
    (dict(tensors=lambda t: {**t, "extra.weight": t["conv_in.bias"]}),
     r"has 1 tensor\(s\) its config does not describe: \['extra.weight'\]"),
    (dict(config=lambda c: {**c, "_class_name": "UNet3DConditionModel"}),
     r"_class_name must be one of \[.*'UNet2DModel'.*\], got 'UNet3DConditionModel'"),
    (dict(config=lambda c: {**c, "time_embedding_type": "fourier"}),
     r"field 'time_embedding_type': jaxdiff's UNet supports only 'positional'"),
    (dict(config=lambda c: {**c, "cross_attention_dim": 64}),
     r"field 'cross_attention_dim': is not supported by jaxdiff's UNet"),
    (dict(config=lambda c: {**c, "up_block_types": ["UpBlock2D", "AttnUpBlock2D"]}),
     r"field 'up_block_types': must mirror down_block_types"),
    (dict(config=lambda c: {**c, "num_class_embeds": 10}),   # no null row for guidance
     r"field 'num_class_embeds': jaxdiff's UNet supports only None"),
])
def test_a_bad_checkpoint_names_the_tensor_or_field(tmp_path, edit, match):
    saved_model("UNet2DModel", tmp_path, **SMALL_ATTENTION)
    edit_folder(tmp_path, **edit)
    with pytest.raises(ValueError, match=match):
        pretrained.load_model(tmp_path)


def test_missing_folders_and_torch_pickles_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pretrained.load_model(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"has no config.json, and no model folder \["):
        pretrained.load_model(tmp_path)
    (tmp_path / folder_io.CONFIG_NAME).write_text(json.dumps(DDPM_CIFAR10))
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="PyTorch pickles are not read"):
        pretrained.load_model(tmp_path)


def test_what_a_unet2dmodel_cannot_be_is_named_on_export(tmp_path):
    base = jm.UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                         attention_levels=(), num_groups=4)
    for change, match in (({"num_classes": 3}, "null row for classifier-free guidance"),
                          ({"resblock_updown": True}, "resblock_updown=True has no"),
                          ({"conv_resample": False}, "conv_resample=False has no")):
        config = dataclasses.replace(base, **change)
        _, params, _ = jm.init(config, key=jax.random.key(0))
        with pytest.raises(ValueError, match=match):
            pretrained.save_model(tmp_path, config, params)
    assert not (tmp_path / folder_io.CONFIG_NAME).exists()
    with pytest.raises(ValueError, match="downsample_padding=0 pads the downsampling conv"):
        dataclasses.replace(base, downsample_padding=0, resblock_updown=True)


def test_saving_over_a_sharded_folder_removes_its_stale_weights(tmp_path):
    """diffusers reads a shard index before the single file: saving over an earlier sharded
    (or pickled) model must not leave its weights to be read instead."""
    saved_model("UNet2DModel", tmp_path, **SMALL_ATTENTION)
    config, params = pretrained.load_model(tmp_path)
    tensors = load_file(tmp_path / folder_io.WEIGHTS_NAME)
    (tmp_path / folder_io.WEIGHTS_NAME).rename(tmp_path / "part-1.safetensors")
    (tmp_path / folder_io.INDEX_NAME).write_text(json.dumps(
        {"weight_map": {name: "part-1.safetensors" for name in tensors}}))
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"old")
    assert sorted(pretrained.load_model(tmp_path)[1]) == sorted(params)   # read by the index
    pretrained.save_model(tmp_path, config, params)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder_io.CONFIG_NAME,
                                                           folder_io.WEIGHTS_NAME]


def test_a_bfloat16_checkpoint_loads_as_its_float32_values(tmp_path):
    torch = require("torch")
    from safetensors.torch import load_file as torch_load
    from safetensors.torch import save_file as torch_save

    saved_model("UNet2DModel", tmp_path, **SMALL_ATTENTION)
    file = tmp_path / folder_io.WEIGHTS_NAME
    halved = {k: v.to(torch.bfloat16) for k, v in torch_load(file).items()}
    torch_save(halved, file)
    config, params = pretrained.load_model(tmp_path)
    want = pretrained.unet_2d.rules(config)[0]       # time_embedding.linear_1.weight
    got = params["time_embed"]["hidden"]["kernel"][...]
    np.testing.assert_array_equal(np.asarray(got), halved[want.names[0]].float().numpy().T)
    assert got.dtype == np.float32
