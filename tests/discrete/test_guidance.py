"""Classifier-free guidance for discrete diffusion, against float64 formulas and brute force.

The source: two classes, each a sticky Markov chain on the oracles' 81 sequences, and their
equal mixture (the null label). With exact Bayes denoisers for each, guided sampling has a
law computable by enumeration: the tilted per-position conditionals
``p_c^{1+w} p_u^{-w}`` multiplied along the unmasking order (left to right for block size 1,
averaged over the 24 orders for masked diffusion's one-token-at-a-time limit).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff.discrete as jd
from tests.discrete import oracles as o

NUM_SAMPLES = 65_536
TV_TOL = 0.02   # as in test_samplers: sampling noise alone gives TV ~ 0.010 here

CLASS_PROBS = np.stack([
    o.markov_probs([0.7, 0.2, 0.1], [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.3, 0.1, 0.6]]),
    o.markov_probs([0.1, 0.2, 0.7], [[0.5, 0.1, 0.4], [0.1, 0.5, 0.4], [0.05, 0.05, 0.9]])])
MIXTURE = CLASS_PROBS.mean(axis=0)
NULL = 2
TABLES = jnp.asarray(np.stack([o.masked_oracle_table(p) for p in (*CLASS_PROBS, MIXTURE)]),
                     jnp.float32)   # [3 (class 0, class 1, null), 256, L, 4]


def conditional_oracle(z, t, cond):
    """The exact x0 denoiser of each row's label (``NULL``: the mixture)."""
    del t
    return TABLES[cond, o.state_index(z, o.NUM_SYMBOLS + 1)]


def _tilted(p_c, p_u, w):
    q = p_c ** (1 + w) * p_u ** (-w)
    return q / q.sum()


def _posterior(probs, known: dict, position: int) -> np.ndarray:
    """p(x^position | the positions in ``known``) under ``probs [81]`` (float64)."""
    keep = np.all([o.SEQUENCES[:, i] == v for i, v in known.items()], axis=0) \
        if known else np.ones(len(probs), bool)
    weights = np.where(keep, probs, 0.0)
    marg = np.bincount(o.SEQUENCES[:, position], weights=weights, minlength=o.NUM_SYMBOLS)
    return marg / marg.sum()


def guided_law(label: int, w: float, orders) -> np.ndarray:
    """The law over the 81 sequences of revealing positions in each of ``orders`` (averaged),
    each from its guided conditional given the positions revealed before it."""
    law = np.zeros(len(o.SEQUENCES))
    for order in orders:
        for n, x in enumerate(o.SEQUENCES):
            p, known = 1.0, {}
            for position in order:
                q = _tilted(_posterior(CLASS_PROBS[label], known, position),
                            _posterior(MIXTURE, known, position), w)
                p *= q[x[position]]
                known[position] = x[position]
            law[n] += p / len(orders)
    return law


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, -1.0, -0.4])
def test_guided_log_probs_equal_the_float64_tilt(w):
    rng = np.random.default_rng(0)
    cond, null = rng.normal(size=(2, 5, 7, 11)) * 3
    log_c = cond - np.log(np.exp(cond).sum(-1, keepdims=True))
    log_u = null - np.log(np.exp(null).sum(-1, keepdims=True))
    tilted = (1 + w) * log_c - w * log_u
    expected = tilted - np.log(np.exp(tilted).sum(-1, keepdims=True))
    got = jd.guided_log_probs(jnp.asarray(cond, jnp.float32), jnp.asarray(null, jnp.float32), w)
    np.testing.assert_allclose(np.asarray(got), expected, atol=2e-5)


def test_guidance_keeps_impossible_tokens_impossible():
    cond = jnp.array([[0.0, 1.0, -jnp.inf, 2.0]])
    null = jnp.array([[0.5, -jnp.inf, -jnp.inf, 0.0]])
    got = np.asarray(jd.guided_log_probs(cond, null, 2.0))
    assert np.isneginf(got[0, 1:3]).all() and np.isfinite(got[0, [0, 3]]).all()
    np.testing.assert_allclose(np.exp(got).sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "2", None])
def test_a_bad_guidance_scale_is_named(bad):
    with pytest.raises(ValueError, match="guidance_scale"):
        jd.guided_log_probs(jnp.zeros((1, 3)), jnp.zeros((1, 3)), bad)


def test_guidance_needs_the_null_condition():
    with pytest.raises(ValueError, match="null_cond"):
        jd.guided_denoiser(conditional_oracle, jnp.zeros(2, jnp.int32), guidance_scale=1.0,
                           null_cond=None)


def _labels(label):
    return jnp.full((NUM_SAMPLES,), label, jnp.int32), jnp.full((NUM_SAMPLES,), NULL, jnp.int32)


def _masked_samples(label, w, num_steps, seed=0):
    cond, null = _labels(label)
    denoise_fn = jd.guided_denoiser(conditional_oracle, cond, guidance_scale=w, null_cond=null)
    process = jd.masked_process("loglinear", vocab_size=o.NUM_SYMBOLS + 1, mask_id=o.MASK_ID)
    sample = jax.jit(lambda key: jd.masked_sample(key, denoise_fn, process,
                                                  (NUM_SAMPLES, o.LENGTH), num_steps=num_steps))
    return np.asarray(sample(jax.random.key(seed)))


def test_guided_sampling_at_w_0_is_conditional_sampling_token_for_token():
    cond, null = _labels(1)
    process = jd.masked_process("loglinear", vocab_size=o.NUM_SYMBOLS + 1, mask_id=o.MASK_ID)
    shape = (NUM_SAMPLES, o.LENGTH)
    guided = jd.masked_sample(jax.random.key(3), jd.guided_denoiser(
        conditional_oracle, cond, guidance_scale=0.0, null_cond=null), process, shape,
        num_steps=6)
    conditional = jd.masked_sample(jax.random.key(3), conditional_oracle, process, shape,
                                   num_steps=6, cond=cond)
    np.testing.assert_array_equal(np.asarray(guided), np.asarray(conditional))


@pytest.mark.parametrize("label, w", [(0, 2.0), (1, 1.0)])
def test_guided_masked_sampling_matches_the_brute_force_law(label, w):
    """With many steps positions unmask one at a time in a uniformly random order."""
    law = guided_law(label, w, list(itertools.permutations(range(o.LENGTH))))
    assert 0.5 * np.abs(law - CLASS_PROBS[label]).sum() > 0.1   # guidance changes the law
    assert o.total_variation(_masked_samples(label, w, num_steps=400), law) < TV_TOL


def test_guided_block_sampling_of_block_size_1_is_the_tilted_left_to_right_law():
    """Block size 1 reveals left to right; the decoder's state holds both branches' rows."""
    label, w = 0, 1.5
    cond, null = _labels(label)
    process = jd.block_process("loglinear", vocab_size=o.NUM_SYMBOLS + 1, mask_id=o.MASK_ID,
                               block_size=1)
    shape = (NUM_SAMPLES, o.LENGTH)
    decode_fn, state = jd.uncached_block_decoder(
        lambda x, c: conditional_oracle(x, None, c), (2 * NUM_SAMPLES, o.LENGTH),
        mask_id=o.MASK_ID)
    guided = jd.guided_decoder(decode_fn, cond, guidance_scale=w, null_cond=null)
    samples = jax.jit(lambda key: jd.block_sample(key, guided, state, process, shape,
                                                  num_steps=1))(jax.random.key(1))
    law = guided_law(label, w, [tuple(range(o.LENGTH))])
    assert o.total_variation(np.asarray(samples), law) < TV_TOL
