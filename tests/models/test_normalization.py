"""GroupNorm with its hand-written backward pass, the ones-product sums and the Conv whose
bias gradient is one: against float64 NumPy and flax's reference modules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdiff.models.normalization import GroupNorm, group_norm
from jaxdiff.models.reductions import add_bias, sum_positions
from jaxdiff.models.unet import Conv


def _group_norm_float64(x, scale, bias, groups, eps=1e-6):
    x = np.asarray(x, np.float64)
    b, c = x.shape[0], x.shape[-1]
    xg = x.reshape(b, -1, groups, c // groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    var = xg.var(axis=(1, 3), keepdims=True)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return y * np.asarray(scale, np.float64) + np.asarray(bias, np.float64)


@pytest.mark.parametrize("shape,groups", [((3, 5, 7, 8), 4), ((2, 6, 16), 16), ((4, 3, 3, 6), 1)])
def test_group_norm_equals_float64_and_flax_with_gradients(shape, groups):
    keys = jax.random.split(jax.random.key(0), 4)
    x = 2.0 * jax.random.normal(keys[0], shape) + 3.0
    channels = shape[-1]
    scale, bias = (jax.random.normal(k, (channels,)) for k in keys[1:3])
    weights = jax.random.normal(keys[3], shape)
    np.testing.assert_allclose(group_norm(x, scale, bias, num_groups=groups),
                               _group_norm_float64(x, scale, bias, groups), atol=2e-5)
    reference = nnx.GroupNorm(channels, num_groups=groups, rngs=nnx.Rngs(0))
    ours = GroupNorm(channels, num_groups=groups)
    for module in (reference, ours):
        module.scale.set_value(scale)
        module.bias.set_value(bias)

    def gradients(module):
        graphdef, state = nnx.split(module)
        loss = lambda s, x: jnp.sum(jnp.sin(nnx.merge(graphdef, s)(x)) * weights)  # noqa: E731
        return jax.grad(loss, argnums=(0, 1))(state, x)

    (ref_state, ref_x), (our_state, our_x) = gradients(reference), gradients(ours)
    assert set(nnx.to_pure_dict(ref_state)) == set(nnx.to_pure_dict(our_state))  # same state
    np.testing.assert_allclose(our_x, ref_x, atol=2e-5, rtol=1e-4)
    for name in ("scale", "bias"):
        np.testing.assert_allclose(our_state[name][...], ref_state[name][...], atol=5e-5,
                                   rtol=1e-4)


def test_group_norm_dtype_and_bad_groups():
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 8)).astype(jnp.bfloat16)
    y = group_norm(x, jnp.ones(8), jnp.zeros(8), num_groups=2)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32),
                               _group_norm_float64(np.asarray(x, np.float32), 1, 0, 2), atol=3e-2)
    with pytest.raises(ValueError, match="num_groups=3 must divide"):
        group_norm(x, jnp.ones(8), jnp.zeros(8), num_groups=3)
    with pytest.raises(ValueError, match="num_groups=3 must divide num_features=8"):
        GroupNorm(8, num_groups=3)


def test_sum_positions_and_add_bias_gradient():
    x = jax.random.normal(jax.random.key(2), (3, 10, 5))
    np.testing.assert_allclose(sum_positions(x), np.asarray(x, np.float64).sum(axis=1),
                               atol=1e-5)
    bias = jax.random.normal(jax.random.key(3), (5,))
    weights = jax.random.normal(jax.random.key(4), x.shape)
    grads = jax.grad(lambda x, b: jnp.sum(jnp.tanh(add_bias(x, b)) * weights),
                     argnums=(0, 1))(x, bias)
    expected = jax.grad(lambda x, b: jnp.sum(jnp.tanh(x + b[None, None]) * weights),
                        argnums=(0, 1))(x, bias)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_equals_flax_conv_with_gradients(stride):
    kwargs = dict(strides=(stride, stride), padding=((1, 1), (1, 1)),
                  bias_init=nnx.initializers.normal(1.0))
    reference = nnx.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)
    ours = Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)  # same initialisation
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
    np.testing.assert_allclose(ours(x), reference(x), atol=1e-6)

    def gradients(module):
        graphdef, state = nnx.split(module)
        loss = lambda s, x: jnp.sum(jnp.sin(nnx.merge(graphdef, s)(x)))  # noqa: E731
        return jax.grad(loss, argnums=(0, 1))(state, x)

    (ref_state, ref_x), (our_state, our_x) = gradients(reference), gradients(ours)
    np.testing.assert_allclose(our_x, ref_x, atol=1e-5)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(our_state[name][...], ref_state[name][...], atol=1e-4,
                                   rtol=1e-5)
