"""Losses and likelihoods with brute-force Bayes oracles on a source of known entropy.

The exact expected bounds enumerate every (x0, x_t) pair with its probability, so they carry no
Monte-Carlo error; the Monte-Carlo estimators are then checked against them.

Tolerances: with T = 200 steps the factorised oracle's D3PM bound sits 0.0042 nats (absorbing)
and 0.0051 nats (uniform) above the entropy of 3.2064 nats (the gap falls like ~0.85/T); we
assert 0 <= gap < 0.01. The continuous-time masked bound is tight for the oracle (it averages
exact autoregressive factorisations over random orders), so it must equal the entropy to
float32 precision: |gap| < 1e-4.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import bits_per_unit
from jaxdiff import discrete as jd
from tests.discrete import oracles as o

NUM_STEPS = 200
GAP_TOL = 0.01  # nats per sequence, D3PM with T = NUM_STEPS


def _alpha_bars(process) -> np.ndarray:
    """alpha_bar after t + 1 steps for every index t, float64."""
    return np.exp(np.asarray(process.log_alpha_bars, np.float64))[1:]


def _absorbing_pairs(process):
    """Every (x0, x_t) with its probability p(x0) q(x_t | x0) at every index: [T, N] weights."""
    x0 = np.repeat(o.SEQUENCES, len(o.PATTERNS), axis=0)
    patterns = np.tile(o.PATTERNS, (len(o.SEQUENCES), 1))
    x_t = np.where(patterns, o.MASK_ID, x0).astype(np.int32)
    num_masked = patterns.sum(axis=1)[None, :]
    alpha_bar = _alpha_bars(process)[:, None]
    weights = (np.repeat(o.PROBS, len(o.PATTERNS))[None, :]
               * alpha_bar ** (o.LENGTH - num_masked) * (1 - alpha_bar) ** num_masked)
    return x0, x_t, weights


def _uniform_pairs(process):
    x_t = np.repeat(o.SEQUENCES, len(o.SEQUENCES), axis=0)
    x0 = np.tile(o.SEQUENCES, (len(o.SEQUENCES), 1))
    lik = np.prod(o.uniform_likelihood(_alpha_bars(process)), axis=-1)  # [T, x_t, x0]
    weights = (lik * o.PROBS[None, None, :]).reshape(process.num_steps, -1)
    return x0, x_t, weights


def _exact_d3pm_elbo(process, denoise_fn, pairs) -> float:
    """E_{x0}[L_T + sum_t E_{x_t|x0} L_t] by enumeration (float64 accumulation)."""
    x0, x_t, weights = pairs
    x0, x_t = jnp.asarray(x0), jnp.asarray(x_t)

    @jax.jit
    def terms(t_index):
        t = jnp.full((x0.shape[0],), t_index, jnp.int32)
        return jd.d3pm_vb_terms(process, denoise_fn(x_t, t), x0, x_t, t)

    values = np.asarray(jax.lax.map(terms, jnp.arange(process.num_steps)), np.float64)
    # Pairs of zero probability (e.g. unmasked tokens after T absorbing steps) are skipped.
    expected_terms = np.where(weights > 0, weights * np.where(weights > 0, values, 0.0), 0.0)
    prior = np.asarray(jax.jit(jd.d3pm_prior_kl)(process, jnp.asarray(o.SEQUENCES)), np.float64)
    return float(expected_terms.sum() + (o.PROBS * prior).sum())


def _exact_masked_elbo(process, denoise_fn, num_nodes: int = 24) -> float:
    """The continuous-time bound: Gauss-Legendre in t, exact enumeration of the mask patterns."""
    nodes, node_weights = np.polynomial.legendre.leggauss(num_nodes)
    times, node_weights = 0.5 * (nodes + 1), 0.5 * node_weights
    x0 = np.repeat(o.SEQUENCES, len(o.PATTERNS), axis=0)
    patterns = np.tile(o.PATTERNS, (len(o.SEQUENCES), 1))
    z = jnp.asarray(np.where(patterns, o.MASK_ID, x0), jnp.int32)
    x0 = jnp.asarray(x0)

    @jax.jit
    def terms(t_scalar):
        t = jnp.full((x0.shape[0],), t_scalar, jnp.float32)
        return jd.masked_elbo_terms(process, denoise_fn(z, t), x0, z, t)

    values = np.asarray(jax.lax.map(terms, jnp.asarray(times, jnp.float32)), np.float64)
    mask_prob = np.asarray(jd.mask_probability(process, jnp.asarray(times)), np.float64)[:, None]
    num_masked = patterns.sum(axis=1)[None, :]
    weights = (np.repeat(o.PROBS, len(o.PATTERNS))[None, :]
               * mask_prob ** num_masked * (1 - mask_prob) ** (o.LENGTH - num_masked))
    return float((node_weights[:, None] * weights * values).sum())


@pytest.fixture(scope="module")
def absorbing():
    return jd.d3pm_process("absorbing", vocab_size=4, num_steps=NUM_STEPS, mask_id=o.MASK_ID)


@pytest.fixture(scope="module")
def uniform():
    return jd.d3pm_process("uniform", vocab_size=3, num_steps=NUM_STEPS)


def test_absorbing_d3pm_bound_with_oracle_is_near_the_entropy(absorbing):
    elbo = _exact_d3pm_elbo(absorbing, o.masked_oracle(), _absorbing_pairs(absorbing))
    assert 0.0 <= elbo - o.ENTROPY < GAP_TOL
    assert elbo - o.ENTROPY == pytest.approx(0.00424, abs=5e-4)  # the measured gap


def test_uniform_d3pm_bound_with_oracle_is_near_the_entropy(uniform):
    pairs = _uniform_pairs(uniform)
    elbo = _exact_d3pm_elbo(uniform, o.uniform_oracle(uniform), pairs)
    assert 0.0 <= elbo - o.ENTROPY < GAP_TOL
    assert elbo - o.ENTROPY == pytest.approx(0.00511, abs=5e-4)
    # D3PM's x0-parameterisation re-weights by q(x_t^i | x0^i), so fed the *full* posterior
    # p(x0^i | x_t) (which counts that evidence already) its bound stays far from the entropy.
    full = _exact_d3pm_elbo(uniform, o.uniform_oracle(uniform, leave_one_out=False), pairs)
    assert full - o.ENTROPY > 1.0


@pytest.mark.parametrize("schedule", jd.MASKING_SCHEDULES)
def test_masked_bound_with_oracle_equals_the_entropy(schedule):
    process = jd.masked_process(schedule, vocab_size=4, mask_id=o.MASK_ID)
    elbo = _exact_masked_elbo(process, o.masked_oracle())
    assert elbo >= o.ENTROPY - 1e-5
    assert abs(elbo - o.ENTROPY) < 1e-4
    # A context-free predictor (the per-position marginals) pays each marginal entropy once.
    marginals = np.stack([np.bincount(o.SEQUENCES[:, i], o.PROBS, o.NUM_SYMBOLS)
                          for i in range(o.LENGTH)])
    table = np.concatenate([np.log(marginals), np.full((o.LENGTH, 1), -np.inf)], axis=1)
    context_free = jnp.asarray(table, jnp.float32)
    elbo_cf = _exact_masked_elbo(
        process, lambda z, t: jnp.broadcast_to(context_free[None], z.shape + (4,)))
    assert elbo_cf == pytest.approx(-(marginals * np.log(marginals)).sum(), abs=1e-4)
    assert elbo_cf > o.ENTROPY + 0.5


def _weighted_mean_and_se(values, replicas: int):
    """Values for R tiled copies of the 81 sequences -> p-weighted mean and its standard error."""
    values = np.asarray(values, np.float64).reshape(replicas, len(o.SEQUENCES)).T
    mean = float((o.PROBS * values.mean(axis=1)).sum())
    se = float(np.sqrt((o.PROBS ** 2 * values.var(axis=1, ddof=1) / replicas).sum()))
    return mean, se


def _replicated_sequences(replicas: int):
    """R copies of the 81 sequences, tiled so that the antithetic time grid spreads over each."""
    return jnp.asarray(np.tile(o.SEQUENCES, (replicas, 1)))


def test_monte_carlo_d3pm_estimators_are_unbiased():
    process = jd.d3pm_process("absorbing", vocab_size=4, num_steps=50, mask_id=o.MASK_ID)
    fn = o.masked_oracle()
    exact = _exact_d3pm_elbo(process, fn, _absorbing_pairs(process))
    replicas = 32
    x0 = _replicated_sequences(replicas)
    elbo = jax.jit(lambda k: jd.d3pm_elbo(k, fn, process, x0))(jax.random.key(0))
    mean, se = _weighted_mean_and_se(elbo, replicas)
    assert abs(mean - exact) < 4 * se
    # The training loss with lambda = 0 is one term per example: E[T L_t] + L_T = L_vb.
    loss = jax.jit(lambda k: jd.d3pm_loss(k, fn, process, x0, hybrid_coeff=0.0))(
        jax.random.key(1))
    mean, se = _weighted_mean_and_se(process.num_steps * loss, replicas)
    assert abs(mean - exact) < 4 * se
    # Stratified over the steps: K = 10 terms of 5-step strata, and K = T is the full sum.
    strat = jax.jit(lambda k: jd.d3pm_elbo(k, fn, process, x0, num_samples=10))(
        jax.random.key(2))
    mean, se = _weighted_mean_and_se(strat, replicas)
    assert abs(mean - exact) < 4 * se
    full = jax.jit(lambda k: jd.d3pm_elbo(k, fn, process, x0, num_samples=50))(
        jax.random.key(0))
    np.testing.assert_array_equal(full, elbo)
    with pytest.raises(ValueError, match="num_samples must divide"):
        jd.d3pm_elbo(jax.random.key(0), fn, process, x0, num_samples=7)


def test_hybrid_loss_at_the_last_index_matches_its_closed_form(absorbing):
    # After T absorbing steps x_t is all [MASK]; one step back unmasks each position with
    # probability 1/T, so L_{T-1} = CE / T and L_lambda = (1/T + lambda) CE, where CE sums
    # -log p(x0^i | all masked) = -log of the marginals.
    x0 = jnp.asarray(o.SEQUENCES)
    t = jnp.full((x0.shape[0],), NUM_STEPS - 1, jnp.int32)
    loss = jax.jit(lambda k: jd.d3pm_loss(k, o.masked_oracle(), absorbing, x0, t=t,
                                          hybrid_coeff=0.01))(jax.random.key(0))
    marginals = np.stack([np.bincount(o.SEQUENCES[:, i], o.PROBS, o.NUM_SYMBOLS)
                          for i in range(o.LENGTH)])
    ce = -np.log(marginals[np.arange(o.LENGTH), o.SEQUENCES]).sum(axis=1)
    np.testing.assert_allclose(loss, (1 / NUM_STEPS + 0.01) * ce, rtol=1e-5)


def test_monte_carlo_masked_estimators_are_unbiased():
    process = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    fn = o.masked_oracle()
    replicas = 64
    x0 = _replicated_sequences(replicas)
    loss = jax.jit(lambda k: jd.masked_diffusion_loss(k, fn, process, x0))(jax.random.key(0))
    mean, se = _weighted_mean_and_se(loss, replicas)
    assert abs(mean - o.ENTROPY) < 4 * se
    elbo = jax.jit(lambda k: jd.masked_elbo(k, fn, process, x0, num_samples=16))(
        jax.random.key(1))
    mean, se = _weighted_mean_and_se(elbo, replicas)
    assert abs(mean - o.ENTROPY) < 4 * se


def test_bits_per_unit_and_perplexity_bound():
    nats = jnp.asarray([8 * math.log(2.0), 4 * math.log(2.0)])
    np.testing.assert_allclose(bits_per_unit(nats, 8), [1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(bits_per_unit(nats, jnp.asarray([8, 2])), [1.0, 2.0],
                               rtol=1e-6)
    # exp(total nats / total tokens) = exp(12 ln 2 / 16) = 2 ** 0.75
    assert float(jd.perplexity_bound(nats, 8)) == pytest.approx(2 ** 0.75, rel=1e-6)
    assert float(jd.perplexity_bound(nats, jnp.asarray([10, 2]))) == pytest.approx(2.0, rel=1e-6)
    # The oracle's entropy in these units.
    per_token = float(bits_per_unit(o.ENTROPY, o.LENGTH))
    assert per_token == pytest.approx(o.ENTROPY / (o.LENGTH * math.log(2)))
