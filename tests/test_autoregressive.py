"""The autoregressive baseline: exact NLL, bits per character, samplers, left-context infilling."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdiff import autoregressive as ar
from jaxdiff import bits_per_unit
from jaxdiff.models.functional import init, make_apply_fn
from jaxdiff.models.text_transformer import TextTransformerConfig

BOS = 3  # bigram tests: symbols 0, 1, 2 and the input-only BOS id 3
# Row v: logits of the next symbol after v; row BOS: the first symbol. Column BOS is
# arbitrary (excluded from every predictive distribution).
BIGRAM_LOGITS = np.log(np.array([
    [0.7, 0.2, 0.1, 1.0],
    [0.1, 0.3, 0.6, 5.0],
    [0.25, 0.5, 0.25, 0.1],
    [0.5, 0.3, 0.2, 9.0],
]))


def bigram_logits_fn(inputs):
    return jnp.asarray(BIGRAM_LOGITS, jnp.float32)[inputs]


def bigram_decode_fn(tokens, state):
    return jnp.asarray(BIGRAM_LOGITS, jnp.float32)[tokens], state + 1


def bigram_probs():
    p = np.exp(BIGRAM_LOGITS[:, :3])
    return p / p.sum(axis=1, keepdims=True)  # rows already sum to 1 over the 3 symbols


def exact_string_probs(length=3):
    p = bigram_probs()
    probs = {}
    for s in itertools.product(range(3), repeat=length):
        prob, prev = 1.0, BOS
        for v in s:
            prob, prev = prob * p[prev, v], v
        probs[s] = prob
    return probs


def empirical_tv(samples, probs):
    counts = {s: 0 for s in probs}
    for row in map(tuple, np.asarray(samples)):
        counts[row] += 1
    n = len(samples)
    return 0.5 * sum(abs(counts[s] / n - p) for s, p in probs.items())


def test_nll_matches_brute_force_bigram():
    tokens = jnp.array([[0, 0, 2], [1, 2, 1]], jnp.int32)
    p = bigram_probs()
    expected = [-math.log(p[BOS, 0] * p[0, 0] * p[0, 2]),
                -math.log(p[BOS, 1] * p[1, 2] * p[2, 1])]
    nll = ar.sequence_nll(bigram_logits_fn, tokens, bos_id=BOS)
    np.testing.assert_allclose(nll, expected, rtol=1e-6)
    # 0.5 * 0.7 * 0.1 and 0.3 * 0.6 * 0.5.
    np.testing.assert_allclose(nll, [-math.log(0.035), -math.log(0.09)], rtol=1e-6)
    per_token = ar.token_log_probs(bigram_logits_fn, tokens, bos_id=BOS)
    np.testing.assert_allclose(per_token[1], np.log([0.3, 0.6, 0.5]), rtol=1e-6)
    loss = ar.ar_loss(bigram_logits_fn, tokens, bos_id=BOS)
    np.testing.assert_allclose(loss, (math.log(1 / 0.035) + math.log(1 / 0.09)) / 6, rtol=1e-6)


def test_bits_per_character_of_a_uniform_model():
    np.testing.assert_allclose(bits_per_unit(jnp.array([8 * math.log(2.0)]), 8), [1.0])
    # A uniform model over 27 characters: log2(27) bits per character.
    uniform = lambda x: jnp.zeros((*x.shape, 28), jnp.float32)  # noqa: E731
    tokens = jnp.zeros((2, 256), jnp.int32)
    nll = ar.sequence_nll(uniform, tokens, bos_id=27)
    np.testing.assert_allclose(bits_per_unit(nll, 256), [math.log2(27)] * 2, rtol=1e-5)


def test_generative_perplexity():
    # A uniform model over the 27 characters has perplexity 27 on anything.
    uniform = lambda x: jnp.zeros((*x.shape, 28), jnp.float32)  # noqa: E731
    samples = jax.random.randint(jax.random.key(0), (5, 16), 0, 27)
    assert float(ar.generative_perplexity(uniform, samples, bos_id=27)) == pytest.approx(27.0,
                                                                                         rel=1e-5)
    # The bigram chain on two strings: exp of their mean NLL per token (see the NLL test).
    tokens = jnp.array([[0, 0, 2], [1, 2, 1]], jnp.int32)
    expected = math.exp((math.log(1 / 0.035) + math.log(1 / 0.09)) / 6)
    assert float(ar.generative_perplexity(bigram_logits_fn, tokens, bos_id=BOS)) == pytest.approx(
        expected, rel=1e-5)


def test_shift_right():
    np.testing.assert_array_equal(ar.shift_right(jnp.array([[5, 6, 7]]), bos_id=9),
                                  [[9, 5, 6]])


@pytest.mark.parametrize("cached", [False, True])
def test_sampler_reproduces_bigram_chain(cached):
    n = 100_000
    key = jax.random.key(0)
    if cached:
        sample = jax.jit(lambda k: ar.ar_sample_cached(k, bigram_decode_fn, jnp.int32(0),
                                                       (n, 3), bos_id=BOS))
    else:
        sample = jax.jit(lambda k: ar.ar_sample(k, bigram_logits_fn, (n, 3), bos_id=BOS))
    x = sample(key)
    assert x.shape == (n, 3) and x.dtype == jnp.int32
    assert int(x.max()) <= 2  # BOS never sampled
    assert empirical_tv(x, exact_string_probs()) < 0.02


def test_cached_and_uncached_bigram_samples_are_identical():
    key = jax.random.key(1)
    a = ar.ar_sample(key, bigram_logits_fn, (64, 5), bos_id=BOS)
    b = ar.ar_sample_cached(key, bigram_decode_fn, jnp.int32(0), (64, 5), bos_id=BOS)
    np.testing.assert_array_equal(a, b)


def test_float64_sampler():
    with pytest.raises(RuntimeError, match="64-bit"):
        ar.ar_sample(jax.random.key(0), bigram_logits_fn, (4, 3), bos_id=BOS, float64=True)
    with jax.enable_x64(True):
        x = jax.jit(lambda k: ar.ar_sample(k, bigram_logits_fn, (100_000, 3), bos_id=BOS,
                                           float64=True))(jax.random.key(2))
    assert empirical_tv(x, exact_string_probs()) < 0.02


def test_temperature_sharpens_as_a_power():
    n = 100_000
    x = jax.jit(lambda k: ar.ar_sample(k, bigram_logits_fn, (n, 1), bos_id=BOS,
                                       temperature=0.5))(jax.random.key(3))
    p = bigram_probs()[BOS] ** 2  # p^(1/T) normalised: [0.25, 0.09, 0.04] / 0.38
    p = p / p.sum()
    freq = np.bincount(np.asarray(x[:, 0]), minlength=3) / n
    assert 0.5 * np.abs(freq - p).sum() < 0.01


def test_known_positions_use_left_context_only():
    # x1 = 2 is known. A left-context sampler draws x0 from its prior p(x0), not from
    # p(x0 | x1 = 2), and x2 from p(x2 | x1 = 2).
    n = 100_000
    known = jnp.broadcast_to(jnp.array([False, True, False]), (n, 3))
    values = jnp.full((n, 3), 2, jnp.int32)
    x = jax.jit(lambda k: ar.ar_sample(k, bigram_logits_fn, (n, 3), bos_id=BOS,
                                       inpaint_mask=known, inpaint_values=values))(
        jax.random.key(4))
    x = np.asarray(x)
    assert np.all(x[:, 1] == 2)
    p = bigram_probs()
    freq0 = np.bincount(x[:, 0], minlength=3) / n
    freq2 = np.bincount(x[:, 2], minlength=3) / n
    assert 0.5 * np.abs(freq0 - p[BOS]).sum() < 0.01
    assert 0.5 * np.abs(freq2 - p[2]).sum() < 0.01
    posterior0 = p[BOS] * p[:3, 2] / np.sum(p[BOS] * p[:3, 2])  # what a bidirectional fill sees
    assert 0.5 * np.abs(posterior0 - p[BOS]).sum() > 0.1


def test_ar_inpaint_text_keeps_known_and_reads_left_context():
    # A deterministic character model: after id v comes (v + 1) % 27 ('z' -> ' ' -> 'a').
    successor = (np.arange(28) + 1) % 27
    table = np.full((28, 28), -30.0, np.float32)
    table[np.arange(28), successor] = 0.0
    logits_fn = lambda x: jnp.asarray(table)[x]  # noqa: E731
    out = ar.ar_inpaint_text(jax.random.key(0), logits_fn, "The [MASK] sat on [MASK]",
                             mask_length=[3, 2], num_samples=2)
    assert out == ["the abc sat on ab"] * 2
    # The first span character follows BOS (id 27), whose successor is 1 ('b').
    assert ar.ar_inpaint_text(jax.random.key(0), logits_fn, "[MASK]y", mask_length=2) == ["bcy"]


def test_argument_errors():
    tokens = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match="bos_id"):
        ar.sequence_nll(bigram_logits_fn, tokens, bos_id=4)
    with pytest.raises(ValueError, match="tokens contains"):
        ar.sequence_nll(bigram_logits_fn, tokens.at[0, 0].set(BOS), bos_id=BOS)
    with pytest.raises(ValueError, match="tokens must have shape"):
        ar.sequence_nll(bigram_logits_fn, jnp.zeros((3,), jnp.int32), bos_id=BOS)
    with pytest.raises(ValueError, match="logits_fn output"):
        ar.sequence_nll(lambda x: jnp.zeros((2, 3)), tokens, bos_id=BOS)
    with pytest.raises(ValueError, match="temperature"):
        ar.ar_sample(jax.random.key(0), bigram_logits_fn, (2, 3), bos_id=BOS, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        ar.ar_sample(jax.random.key(0), bigram_logits_fn, (2,), bos_id=BOS)
    with pytest.raises(ValueError, match="inpaint_mask must have shape"):
        ar.ar_sample(jax.random.key(0), bigram_logits_fn, (2, 3), bos_id=BOS,
                     inpaint_mask=jnp.zeros((2, 4), bool), inpaint_values=tokens)
    with pytest.raises(ValueError, match="inpaint_values holds the .* id 3 at a known"):
        ar.ar_sample(jax.random.key(0), bigram_logits_fn, (2, 3), bos_id=BOS,
                     inpaint_mask=jnp.ones((2, 3), bool), inpaint_values=tokens + BOS)
    with pytest.raises(ValueError, match="decode_fn"):
        ar.ar_sample_cached(jax.random.key(0), lambda t, s: (jnp.zeros((5, 4)), s),
                            jnp.int32(0), (2, 3), bos_id=BOS)


# ---------------------------------------------------------------------------------------
# With the causal TextTransformer

CONFIG = TextTransformerConfig(vocab_size=28, max_length=8, hidden_size=32, depth=1,
                               num_heads=2, dropout=0.0, causal=True,
                               time_conditioning=False)


@pytest.fixture(scope="module")
def causal_model():
    graphdef, params, rest = init(CONFIG, key=jax.random.key(0))
    # Zero-initialised output layer gives uniform logits; perturb every parameter so the
    # model is a non-trivial causal distribution.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [leaf + 0.3 * jax.random.normal(k, leaf.shape)
                                          for leaf, k in zip(leaves, keys, strict=True)])
    return graphdef, params, rest


def test_transformer_sampler_jits_and_cache_matches(causal_model):
    graphdef, params, rest = causal_model
    apply_fn = make_apply_fn(graphdef, rest)
    shape = (4, 8)

    @jax.jit
    def uncached(key, params):
        return ar.ar_sample(key, lambda x: apply_fn(params, x, None), shape, bos_id=27)

    @jax.jit
    def cached(key, params):
        model = nnx.merge(graphdef, params, rest)
        return ar.ar_sample_cached(key, model.decode_step, model.init_cache(shape[0]), shape,
                                   bos_id=27)

    key = jax.random.key(5)
    a, b = uncached(key, params), cached(key, params)
    assert a.shape == shape and a.dtype == jnp.int32
    assert int(a.min()) >= 0 and int(a.max()) <= 26
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(np.asarray(a))) > 3  # not a constant sequence
    # The teacher-forced NLL of the draws is finite and below the uniform model's.
    nll = jax.jit(lambda p, x: ar.sequence_nll(lambda y: apply_fn(p, y, None), x,
                                               bos_id=27))(params, a)
    assert np.all(np.isfinite(nll)) and np.all(np.asarray(nll) > 0)
    assert float(jnp.mean(nll)) < shape[1] * math.log(27)
