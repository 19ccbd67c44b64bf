"""The text transformer: shapes, time inputs, causality, KV-cache decoding, checks."""

import dataclasses
import itertools

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


LABELLED_BLOCK = jm.TextTransformerConfig(vocab_size=11, max_length=12, hidden_size=32, depth=2,
                                          num_heads=4, dropout=0.0, block_size=3,
                                          time_conditioning=False, num_classes=3, cond_dim=16)


def test_labels_condition_every_variant_and_the_null_label_is_its_own_row():
    tokens = jax.random.randint(jax.random.key(0), (4, 12), 0, 11)
    t = jnp.full((4,), 0.5)
    for config, time in ((LABELLED_BLOCK, None),
                         (dataclasses.replace(BIDIRECTIONAL, num_classes=3), t)):
        model = random_model(config)
        outputs = [np.asarray(model(tokens, time, jnp.full((4,), y, jnp.int32)))
                   for y in range(4)]   # 3: the null label
        for a, b in itertools.combinations(outputs, 2):
            assert np.abs(a - b).max() > 1e-3
        mixed = np.asarray(model(tokens, time, jnp.array([0, 1, 2, 3], jnp.int32)))
        np.testing.assert_allclose(mixed, np.stack([outputs[y][y] for y in range(4)]),
                                   atol=1e-5)


def test_a_labelled_kv_cache_equals_the_labelled_block_causal_pass():
    model = random_model(LABELLED_BLOCK, seed=2)
    labels = jnp.array([0, 3], jnp.int32)
    x = jax.random.randint(jax.random.key(1), (2, 12), 0, 10)
    full = model(x, None, labels)
    cache = model.init_cache(2)
    for b in range(4):
        rows = slice(3 * b, 3 * b + 3)
        logits, cache = model.decode_block(x[:, rows], cache, cond=labels)
        np.testing.assert_allclose(logits, full[:, rows], atol=2e-5, rtol=0)


def test_labels_are_required_exactly_when_the_model_has_classes():
    tokens = jnp.zeros((2, 12), jnp.int32)
    with pytest.raises(ValueError, match="cond is required"):
        random_model(LABELLED_BLOCK)(tokens)
    with pytest.raises(ValueError, match="cond must be None"):
        random_model(CAUSAL)(tokens, None, jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="cond must have shape"):
        random_model(LABELLED_BLOCK)(tokens, None, jnp.zeros(3, jnp.int32))
