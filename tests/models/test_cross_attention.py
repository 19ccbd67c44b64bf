"""Masked (cross-)attention: a float64 NumPy softmax reference, padded keys carry no weight."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdiff.models.cross_attention import CrossAttention, masked_attention
from tests.models.util import random_params


def _reference(q, k, v, mask):
    logits = np.einsum("blhk,bshk->bhls", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhls,bshk->blhk", weights, v)


def test_masked_attention_matches_float64_softmax():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in
               ((2, 5, 3, 4), (2, 7, 3, 4), (2, 7, 3, 4)))
    mask = np.array([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)
    got = masked_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(mask))
    np.testing.assert_allclose(got, _reference(q.astype(np.float64), k, v, mask), atol=1e-6)
    with pytest.raises(ValueError, match="a row with no key"):
        masked_attention(q, k, v, np.zeros((2, 7), bool))


def test_cross_attention_ignores_padding_and_reads_the_caption():
    module = CrossAttention(8, 6, num_heads=2, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(module, nnx.Param)
    params = random_params(params, seed=1)
    attend = nnx.merge(graphdef, params)
    x = jax.random.normal(jax.random.key(2), (2, 4, 8))
    context = jax.random.normal(jax.random.key(3), (2, 5, 6))
    mask = jnp.array([[True, True, False, False, False], [True] * 5])
    out = attend(x, context, mask)
    padded_changed = context.at[0, 2:].set(100.0)
    np.testing.assert_array_equal(attend(x, padded_changed, mask), out)
    caption_changed = context.at[0, 1].add(1.0)
    assert np.max(np.abs(attend(x, caption_changed, mask)[0] - out[0])) > 1e-3
    with pytest.raises(ValueError, match=r"mask must be bool \[B, S\]"):
        attend(x, context, mask.astype(jnp.int32))
