"""The DDPM / ADM UNet: parameter count, shapes, conditioning, argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff.models as jm
from tests.models.util import random_params

# A small ADM-style network with every option on, and a small DDPM-style one.
ADM_SMALL = jm.UNetConfig(image_size=8, base_channels=16, channel_mults=(1, 2),
                          num_res_blocks=1, attention_levels=(1,), head_channels=8,
                          dropout=0.0, num_groups=4, scale_shift_norm=True,
                          resblock_updown=True, num_classes=3, learned_variance=True)
DDPM_SMALL = jm.UNetConfig(image_size=8, base_channels=16, channel_mults=(1, 2),
                           num_res_blocks=1, attention_levels=(0,), num_groups=4)


@pytest.fixture(scope="module")
def adm_small():
    return jm.abstract_init(ADM_SMALL)


@pytest.fixture(scope="module")
def ddpm_cifar10():
    return jm.abstract_init(jm.preset_config("ddpm_cifar10"))


def test_ddpm_cifar10_has_35_7m_parameters(ddpm_cifar10):
    # Ho et al. 2020 report 35.7M; the official TF network has 35,746,307.
    _, params, rest = ddpm_cifar10
    count = jm.count_params(params)
    assert count == pytest.approx(35.7e6, rel=0.005)
    assert count == 35_746_307
    assert jm.count_params(rest) == 0


def test_ddpm_cifar10_maps_32x32x3_images_to_eps_of_the_same_shape(ddpm_cifar10):
    graphdef, params, rest = ddpm_cifar10
    x_t = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32)
    t = jax.ShapeDtypeStruct((4,), jnp.int32)
    out = jax.eval_shape(jm.make_apply_fn(graphdef, rest), params, x_t, t)
    assert (out.shape, out.dtype) == ((4, 32, 32, 3), jnp.float32)


@pytest.mark.parametrize("config", [
    jm.preset_config("unet_tiny"),
    ADM_SMALL,
    jm.UNetConfig(image_size=24, base_channels=32, channel_mults=(1, 2, 3, 4),
                  num_res_blocks=1, attention_levels=(2, 3), num_heads=4,
                  conv_resample=False, num_classes=10, learned_variance=True),
], ids=["tiny_16", "adm_8", "adm_24"])
def test_output_shape_and_dtype_for_several_resolutions_and_batch_sizes(config):
    graphdef, params, rest = jm.abstract_init(config)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    size, channels = config.image_size, config.in_channels
    out_channels = 2 * channels if config.learned_variance else channels
    for batch in (1, 5):
        x_t = jax.ShapeDtypeStruct((batch, size, size, channels), jnp.float32)
        t = jax.ShapeDtypeStruct((batch,), jnp.int32)
        out = jax.eval_shape(apply_fn, params, x_t, t)
        assert out.shape == (batch, size, size, out_channels)
        assert out.dtype == jnp.float32


def test_learned_sigma_doubles_the_output_channels():
    assert ADM_SMALL.out_channels == 6
    assert jm.UNetConfig(learned_variance=False).out_channels == 3


def test_class_and_timestep_change_the_output():
    graphdef, abstract_params, rest = jm.abstract_init(ADM_SMALL)
    params = random_params(abstract_params)
    apply_fn = jax.jit(jm.make_apply_fn(graphdef, rest))
    x_t = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
    t = jnp.array([10, 500], jnp.int32)
    out_0 = apply_fn(params, x_t, t, jnp.array([0, 0]))
    out_1 = apply_fn(params, x_t, t, jnp.array([1, 1]))
    out_null = apply_fn(params, x_t, t, jnp.array([3, 3]))
    out_later = apply_fn(params, x_t, t + 300, jnp.array([0, 0]))
    assert out_0.shape == (2, 8, 8, 6) and out_0.dtype == jnp.float32
    assert np.isfinite(np.asarray(out_0)).all()
    for other in (out_1, out_null, out_later):
        assert float(jnp.abs(out_0 - other).mean()) > 1e-3
    # No labels is the null class: the unconditional branch of classifier-free guidance.
    np.testing.assert_array_equal(np.asarray(apply_fn(params, x_t, t, None)),
                                  np.asarray(out_null))


@pytest.mark.parametrize("x_t, t, cond, error, message", [
    (jnp.zeros((2, 8, 8)), jnp.zeros(2, jnp.int32), None, ValueError, "x_t must have rank 4"),
    (jnp.zeros((2, 8, 8, 1)), jnp.zeros(2, jnp.int32), None, ValueError, "x_t must have shape"),
    (jnp.zeros((2, 16, 16, 3)), jnp.zeros(2, jnp.int32), None, ValueError,
     "x_t must have shape"),
    (jnp.zeros((2, 8, 8, 3), jnp.int32), jnp.zeros(2, jnp.int32), None, TypeError,
     "x_t must have a floating"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 1), jnp.int32), None, ValueError,
     "t must have rank 1"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(3, jnp.int32), None, ValueError, "t must have shape"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, bool), None, TypeError,
     "t must have an integer or floating"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, jnp.int32), jnp.zeros(2), TypeError,
     "cond must have an integer"),
    (jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, jnp.int32), jnp.zeros(3, jnp.int32), ValueError,
     "cond must have shape"),
])
def test_bad_arguments_fail_naming_the_argument(adm_small, x_t, t, cond, error, message):
    graphdef, params, rest = adm_small
    apply_fn = jm.make_apply_fn(graphdef, rest)
    with pytest.raises(error, match=message):
        jax.eval_shape(apply_fn, params, x_t, t, cond)


def test_unconditional_network_rejects_labels():
    graphdef, params, rest = jm.abstract_init(DDPM_SMALL)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    with pytest.raises(ValueError, match="cond must be None"):
        jax.eval_shape(apply_fn, params, jnp.zeros((2, 8, 8, 3)), jnp.zeros(2, jnp.int32),
                       jnp.zeros(2, jnp.int32))


@pytest.mark.parametrize("overrides, message", [
    (dict(image_size=12, channel_mults=(1, 2, 2, 2)), "image_size=12 must be divisible"),
    (dict(attention_levels=(4,)), "attention_levels entry 4 is not a level"),
    (dict(base_channels=48), "must be divisible by num_groups=32"),
    (dict(num_heads=3), "must be divisible by num_heads=3"),
    (dict(dropout=1.0), "dropout must lie in"),
    (dict(num_classes=0), "num_classes must be an int >= 1"),
])
def test_invalid_config_fails_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        jm.UNetConfig(**overrides)
