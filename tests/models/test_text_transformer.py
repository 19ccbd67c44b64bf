"""The text transformer: shapes, time inputs, causality, KV-cache decoding, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxdiff.models as jm
from tests.models.util import random_params

BIDIRECTIONAL = jm.TextTransformerConfig(vocab_size=11, max_length=16, hidden_size=32, depth=2,
                                         num_heads=4, dropout=0.0, cond_dim=16,
                                         frequency_dim=16)
CAUSAL = jm.TextTransformerConfig(vocab_size=11, max_length=16, hidden_size=32, depth=2,
                                  num_heads=4, dropout=0.0, causal=True,
                                  time_conditioning=False)


def random_model(config: jm.TextTransformerConfig, seed: int = 0) -> jm.TextTransformer:
    graphdef, abstract_params, rest = jm.abstract_init(config)
    return nnx.merge(graphdef, random_params(abstract_params, seed=seed, scale=0.3), rest)


@pytest.mark.parametrize("config", [
    BIDIRECTIONAL, CAUSAL, jm.preset_config("text_tiny"), jm.preset_config("text_causal_tiny"),
    jm.TextTransformerConfig(vocab_size=50, max_length=8, hidden_size=24, depth=1, num_heads=2,
                             positions="learned"),
], ids=["bidirectional", "causal", "text_tiny", "text_causal_tiny", "learned_positions"])
def test_logits_shape_and_dtype(config):
    graphdef, params, rest = jm.abstract_init(config)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    for batch, length in ((1, config.max_length), (3, 5)):
        tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32)
        t = None if not config.time_conditioning else jax.ShapeDtypeStruct((batch,), jnp.int32)
        logits = jax.eval_shape(apply_fn, params, tokens, t)
        assert logits.shape == (batch, length, config.vocab_size)
        assert logits.dtype == jnp.float32


def test_time_as_step_index_or_continuous_time():
    # Float t in [0, 1] is scaled by continuous_time_scale: t = 0.25 equals index 250.
    graphdef, abstract_params, rest = jm.abstract_init(BIDIRECTIONAL)
    params = random_params(abstract_params, scale=0.3)
    apply_fn = jax.jit(jm.make_apply_fn(graphdef, rest))
    tokens = jnp.array([[1, 2, 3, 10, 10, 4]], jnp.int32)
    logits_index = apply_fn(params, tokens, jnp.array([250], jnp.int32))
    logits_float = apply_fn(params, tokens, jnp.array([0.25], jnp.float32))
    logits_other = apply_fn(params, tokens, jnp.array([0.75], jnp.float32))
    np.testing.assert_allclose(logits_float, logits_index, rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(logits_float - logits_other).mean()) > 1e-3


def _jacobian_norms(config: jm.TextTransformerConfig) -> np.ndarray:
    """``[L_out, L_in]``: norm of d logits[:, i] / d embeddings[:, j]."""
    graphdef, state = nnx.split(random_model(config))
    tokens = jax.random.randint(jax.random.key(1), (1, 7), 0, config.vocab_size)
    t = jnp.array([0.5]) if config.time_conditioning else None

    @jax.jit
    def jacobian(state):
        model = nnx.merge(graphdef, state)
        embeddings = model.embed(tokens)
        return jax.jacrev(lambda h: model.logits_from_embeddings(h, t))(embeddings)

    # [1, L, V, 1, L, D] -> [L_out, L_in]
    return np.asarray(jnp.sqrt((jacobian(state)[0, :, :, 0] ** 2).sum(axis=(1, 3))))


def test_causal_output_has_zero_gradient_from_later_tokens():
    norms = _jacobian_norms(CAUSAL)
    later = np.triu(np.ones_like(norms, bool), k=1)
    np.testing.assert_array_equal(norms[later], 0.0)
    assert (norms[~later] > 1e-6).all()


def test_bidirectional_output_depends_on_every_token():
    norms = _jacobian_norms(BIDIRECTIONAL)
    assert (norms > 1e-6).all()


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_kv_cache_decoding_matches_the_full_causal_forward(positions):
    config = jm.TextTransformerConfig(vocab_size=11, max_length=16, hidden_size=32, depth=2,
                                      num_heads=4, dropout=0.0, causal=True,
                                      time_conditioning=False, positions=positions)
    model = random_model(config)
    tokens = jax.random.randint(jax.random.key(1), (2, 9), 0, config.vocab_size)
    graphdef, state = nnx.split(model)

    @jax.jit
    def decoded_and_full_logits(state, tokens):
        model = nnx.merge(graphdef, state)

        def step(cache, token_B):
            logits, cache = model.decode_step(token_B, cache)
            return cache, logits

        cache, logits_LxBxV = jax.lax.scan(step, model.init_cache(tokens.shape[0]), tokens.T)
        return logits_LxBxV.transpose(1, 0, 2), model(tokens), cache.length

    decoded, full, length = decoded_and_full_logits(state, tokens)
    assert int(length) == 9
    np.testing.assert_allclose(decoded, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tokens, t, error, message", [
    (jnp.zeros((2, 5)), jnp.zeros(2, jnp.int32), TypeError, "tokens must have an integer"),
    (jnp.zeros((2, 5, 1), jnp.int32), jnp.zeros(2, jnp.int32), ValueError,
     "tokens must have rank 2"),
    (jnp.zeros((2, 17), jnp.int32), jnp.zeros(2, jnp.int32), ValueError,
     "tokens has length 17 > max_length=16"),
    (jnp.zeros((2, 5), jnp.int32), jnp.zeros(3, jnp.int32), ValueError, "t must have shape"),
    (jnp.zeros((2, 5), jnp.int32), None, ValueError, "t is required"),
])
def test_bad_arguments_fail_naming_the_argument(tokens, t, error, message):
    graphdef, params, rest = jm.abstract_init(BIDIRECTIONAL)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    with pytest.raises(error, match=message):
        jax.eval_shape(apply_fn, params, tokens, t)


def test_causal_model_without_time_conditioning_rejects_t_and_bidirectional_cannot_decode():
    causal = random_model(CAUSAL)
    with pytest.raises(ValueError, match="t must be None"):
        causal(jnp.zeros((1, 3), jnp.int32), jnp.zeros(1, jnp.int32))
    with pytest.raises(ValueError, match="tokens must have shape"):
        causal.decode_step(jnp.zeros((3,), jnp.int32), causal.init_cache(2))
    with pytest.raises(ValueError, match="needs a causal model"):
        random_model(BIDIRECTIONAL).init_cache(2)


@pytest.mark.parametrize("overrides, message", [
    (dict(positions="absolute"), "positions must be 'rotary' or 'learned'"),
    (dict(hidden_size=30, num_heads=4), "hidden_size=30 must be divisible by num_heads=4"),
    (dict(vocab_size=0), "vocab_size must be an int >= 1"),
])
def test_invalid_config_fails_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        jm.TextTransformerConfig(**{**dict(vocab_size=11, max_length=16), **overrides})
