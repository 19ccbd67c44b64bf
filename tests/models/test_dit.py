"""DiT (Peebles & Xie 2023): parameter counts, shapes, adaLN-Zero, conditioning, positions,
checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxdiff.models as jm
from jaxdiff.models.embeddings import sincos_2d_position_embedding
from tests.models.util import SMALL_DIT as SMALL
from tests.models.util import random_params


@pytest.fixture(scope="module")
def small():
    return jm.abstract_init(SMALL)


@pytest.mark.parametrize("name, paper_count", [
    ("dit_s2", 33e6), ("dit_b2", 130e6), ("dit_xl2", 675e6)])
def test_parameter_counts_match_the_paper(name, paper_count):
    # Table 1 of Peebles & Xie 2023, ImageNet 256x256 latents (32x32x4, 1000 classes,
    # learned sigma); never materialised.
    config = jm.preset_config(name)
    assert (config.image_size, config.in_channels, config.num_classes) == (32, 4, 1000)
    assert config.learned_variance
    _, params, _ = jm.abstract_init(config)
    assert jm.count_params(params) == pytest.approx(paper_count, rel=0.01)


@pytest.mark.parametrize("config", [
    jm.preset_config("dit_s2"), jm.preset_config("dit_tiny"), SMALL,
    jm.DiTConfig(image_size=12, in_channels=1, patch_size=4, hidden_size=32, depth=1,
                 num_heads=2, num_classes=None, learned_variance=False),
], ids=["s2_32", "tiny_16", "small_8", "p4_12"])
def test_output_shape_and_dtype_for_several_resolutions_and_batch_sizes(config):
    graphdef, params, rest = jm.abstract_init(config)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    size, channels = config.image_size, config.in_channels
    for batch in (1, 3):
        x_t = jax.ShapeDtypeStruct((batch, size, size, channels), jnp.float32)
        t = jax.ShapeDtypeStruct((batch,), jnp.int32)
        out = jax.eval_shape(apply_fn, params, x_t, t)
        assert out.shape == (batch, size, size, config.out_channels)
        assert out.dtype == jnp.float32


def test_adaln_zero_initialisation_zeroes_every_gate_and_the_output_layer():
    # Peebles & Xie 2023, Sec. 3.2: each block starts as the identity, the network at 0.
    _, params, _ = jm.init(SMALL, key=jax.random.key(0))
    zero_init = [block["modulation"]["kernel"] for block in params["blocks"].values()]
    zero_init += [params["final_modulation"]["kernel"], params["final_projection"]["kernel"]]
    for kernel in zero_init:
        np.testing.assert_array_equal(kernel[...], 0.0)
    assert float(jnp.abs(params["blocks"][0]["attention"]["qkv"]["kernel"][...]).max()) > 0


def test_class_conditioning_changes_the_output_and_patches_are_put_back_in_place(small):
    graphdef, abstract_params, rest = small
    params = random_params(abstract_params)
    apply_fn = jax.jit(jm.make_apply_fn(graphdef, rest))
    x_t = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    t = jnp.array([1, 700])
    out_0 = apply_fn(params, x_t, t, jnp.array([0, 0]))
    out_1 = apply_fn(params, x_t, t, jnp.array([1, 1]))
    out_null = apply_fn(params, x_t, t, jnp.array([5, 5]))
    for other in (out_1, out_null):
        assert float(jnp.abs(out_0 - other).mean()) > 1e-3
    # Changing one input pixel changes the output only through attention and its own
    # patch; with the attention output projections zeroed, only that 2x2 patch moves.
    model = nnx.merge(graphdef, params, rest)
    for block in model.blocks:
        block.attention.output.kernel[...] = jnp.zeros_like(block.attention.output.kernel)
    _, no_attention, _ = nnx.split(model, nnx.Param, ...)
    x_moved = x_t.at[:, 5, 2, :].add(1.0)
    delta = np.asarray(apply_fn(no_attention, x_moved, t, jnp.array([0, 0]))
                       - apply_fn(no_attention, x_t, t, jnp.array([0, 0])))
    changed = np.abs(delta).max(axis=(0, 3)) > 0
    expected = np.zeros((8, 8), bool)
    expected[4:6, 2:4] = True
    np.testing.assert_array_equal(changed, expected)


def _dit_code_positions(embed_dim: int, grid_size: int) -> np.ndarray:
    """``get_2d_sincos_pos_embed`` of the DiT code (facebookresearch/DiT, from MAE)."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape(2, 1, grid_size, grid_size)

    def one_axis(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_axis(embed_dim // 2, grid[0]), one_axis(embed_dim // 2, grid[1])],
                          axis=1)


def test_the_position_table_is_the_dit_codes_and_older_runs_keep_the_rows_first(small):
    """Column first, as in the DiT code; ``position_columns_first=False`` (runs recorded
    before config version 6) swaps the halves, and the network reads the field."""
    table = sincos_2d_position_embedding(4, 16)
    np.testing.assert_allclose(table, _dit_code_positions(16, 4), rtol=0, atol=1e-7)
    np.testing.assert_allclose(table[1, :4], np.sin(1 / 10_000 ** (np.arange(4) / 4)),
                               rtol=0, atol=1e-7)   # token 1 = row 0, column 1
    np.testing.assert_array_equal(sincos_2d_position_embedding(4, 16, columns_first=False),
                                  np.concatenate([table[:, 8:], table[:, :8]], axis=1))
    graphdef, abstract_params, rest = small
    params = random_params(abstract_params)
    x_t, t = jax.random.normal(jax.random.key(1), (1, 8, 8, 3)), jnp.array([3])
    rows_first = jm.abstract_init(dataclasses.replace(SMALL, position_columns_first=False))
    out = jm.make_apply_fn(graphdef, rest)(params, x_t, t)
    out_rows_first = jm.make_apply_fn(rows_first[0], rows_first[2])(params, x_t, t)
    assert float(jnp.abs(out - out_rows_first).max()) > 1e-3


@pytest.mark.parametrize("x_t, t, cond, error, message", [
    (jnp.zeros((2, 8, 8)), jnp.zeros(2, jnp.int32), None, ValueError, "x_t must have rank 4"),
    (jnp.zeros((2, 8, 8, 4)), jnp.zeros(2, jnp.int32), None, ValueError, "x_t must have shape"),
    (jnp.zeros((2, 8, 8, 3), jnp.uint8), jnp.zeros(2, jnp.int32), None, TypeError,
     "x_t must have a floating"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(4, jnp.int32), None, ValueError, "t must have shape"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, jnp.int32), jnp.zeros(2), TypeError,
     "cond must have an integer"),
])
def test_bad_arguments_fail_naming_the_argument(small, x_t, t, cond, error, message):
    graphdef, params, rest = small
    apply_fn = jm.make_apply_fn(graphdef, rest)
    with pytest.raises(error, match=message):
        jax.eval_shape(apply_fn, params, x_t, t, cond)


@pytest.mark.parametrize("overrides, message", [
    (dict(image_size=30, patch_size=4), "image_size=30 must be divisible by patch_size=4"),
    (dict(hidden_size=100, num_heads=3), "hidden_size=100 must be divisible by num_heads=3"),
    (dict(depth=0), "depth must be an int >= 1"),
])
def test_invalid_config_fails_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        jm.DiTConfig(**overrides)
