"""make_decode_fns: the functional KV-cache decoder equals the full causal forward pass."""

import functools

import jax
import numpy as np

from jaxdiff import autoregressive
from jaxdiff import models as jm


def test_cached_sampling_through_the_functional_decoder_equals_uncached_sampling():
    config = jm.preset_config("text_causal_tiny", vocab_size=28, max_length=12, hidden_size=16,
                              depth=2, num_heads=2)
    graphdef, params, rest = jm.init(config, key=jax.random.key(0))
    init_cache, decode = jm.make_decode_fns(graphdef, rest)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    key = jax.random.key(1)
    cached = jax.jit(lambda k, p: autoregressive.ar_sample_cached(
        k, functools.partial(decode, p), init_cache(p, 3), (3, 12), bos_id=27))(key, params)
    uncached = jax.jit(lambda k, p: autoregressive.ar_sample(
        k, lambda x: apply_fn(p, x, None), (3, 12), bos_id=27))(key, params)
    np.testing.assert_array_equal(cached, uncached)
    tokens = np.asarray(cached)
    logits, cache = decode(params, tokens[:, 0], init_cache(params, 3))
    full = apply_fn(params, tokens, None)
    np.testing.assert_allclose(logits, full[:, 0], atol=1e-5)
    assert logits.dtype == np.float32 and int(cache.length) == 1
