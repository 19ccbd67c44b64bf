"""SEDD against brute force on the tiny source: the absorbing score entropy is masked
diffusion's ELBO, the uniform one equals a sequence-level float64 sum over explicit rates,
the exact concrete score minimises it, and tau-leaping with the exact score reproduces the
source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd
from tests.discrete import oracles as o

NUM_SAMPLES = 65_536
TV_TOL = 0.02
ABSORBING = jd.sedd_process("absorbing", vocab_size=4, mask_id=o.MASK_ID)
UNIFORM = jd.sedd_process("uniform", vocab_size=3)
POWERS = o.NUM_SYMBOLS ** np.arange(o.LENGTH - 1, -1, -1)


def _alpha(process, t: float) -> float:
    return float(jd.sedd.keep_probability(process, jnp.float32(t)))


def test_absorbing_score_entropy_is_the_masked_elbo_integrand():
    """o = log p + log N, so s = alpha / (1 - alpha) p: sigma (r - r log(r p) + r log r - r)
    = -log p / t."""
    masked = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    x0 = jnp.asarray(o.SEQUENCES[::5])
    t = jnp.linspace(0.05, 0.95, x0.shape[0]).astype(jnp.float32)
    z = jd.masked_q_sample(jax.random.key(0), masked, x0, t)
    logits = jax.random.normal(jax.random.key(1), x0.shape + (4,))
    output = jd.log_softmax_excluding(logits, o.MASK_ID) + np.log(3)
    sedd = jd.score_entropy_terms(ABSORBING, jd.log_score(ABSORBING, output, t), x0, z, t)
    np.testing.assert_allclose(sedd, jd.masked_elbo_terms(masked, logits, x0, z, t),
                               rtol=2e-5, atol=1e-5)


def _brute_force_uniform(log_s, x0, x_t, t: float) -> np.ndarray:
    """sigma(t) sum over the sequences y one token away from x_t of the rate y -> x_t (1/N)
    times [s - r log s + r (log r - 1)], r = p_t|0(y | x0) / p_t|0(x_t | x0) over whole
    sequences, in float64."""
    n, alpha = 3, _alpha(UNIFORM, t)
    sigma = float(jd.sedd.noise_rate(UNIFORM, jnp.float32(t)))

    def p_seq(y, x):
        return np.prod(alpha * (y == x) + (1 - alpha) / n)

    out = np.zeros(len(x0))
    for b in range(len(x0)):
        for pos in range(o.LENGTH):
            for y in range(n):
                if y == x_t[b, pos]:
                    continue
                neighbour = x_t[b].copy()
                neighbour[pos] = y
                r = p_seq(neighbour, x0[b]) / p_seq(x_t[b], x0[b])
                s = np.exp(log_s[b, pos, y])
                out[b] += sigma / n * (s - r * np.log(s) + r * (np.log(r) - 1))
    return out


def test_uniform_score_entropy_equals_the_sequence_level_sum():
    x0 = o.SEQUENCES[::7]
    x_t = np.asarray(jd.sedd_q_sample(jax.random.key(2), UNIFORM, jnp.asarray(x0),
                                      jnp.full(len(x0), 0.6)))
    log_s = np.asarray(jax.random.normal(jax.random.key(3), x0.shape + (3,)), np.float64)
    got = jd.score_entropy_terms(UNIFORM, jnp.asarray(log_s, jnp.float32), jnp.asarray(x0),
                                 jnp.asarray(x_t), jnp.full(len(x0), 0.6, jnp.float32))
    np.testing.assert_allclose(got, _brute_force_uniform(log_s, x0, x_t, 0.6), rtol=2e-5)


def _uniform_marginal(alpha):
    """p_t over the 81 sequences, [81]."""
    per_token = alpha * np.eye(3) + (1 - alpha) / 3
    kernel = np.prod(per_token[o.SEQUENCES[:, None, :], o.SEQUENCES[None, :, :]], axis=-1)
    return kernel @ o.PROBS


def _exact_uniform_log_score(alpha) -> np.ndarray:
    """log p_t(x^{l<-y}) / p_t(x) for every x in the 81 sequences: [81, L, 3]."""
    p_t = _uniform_marginal(alpha)
    index = np.arange(81)
    out = np.zeros((81, o.LENGTH, 3))
    for pos in range(o.LENGTH):
        for y in range(3):
            neighbour = index + (y - o.SEQUENCES[:, pos]) * POWERS[pos]
            out[:, pos, y] = np.log(p_t[neighbour] / p_t)
    return out


def test_the_exact_concrete_score_minimises_the_expected_score_entropy():
    """E over x0 ~ p and x_t ~ p_t|0 of the loss at t = 0.4, by enumerating all 81 x 81
    pairs: the exact score beats every perturbation of it."""
    t, alpha = 0.4, _alpha(UNIFORM, 0.4)
    x0 = np.repeat(o.SEQUENCES, 81, axis=0)
    x_t = np.tile(o.SEQUENCES, (81, 1))
    per_token = alpha * (x_t == x0) + (1 - alpha) / 3
    weight = np.repeat(o.PROBS, 81) * np.prod(per_token, axis=1)
    rows = np.tile(np.arange(81), 81)   # x_t's row of a score table, a function of x_t only
    exact = _exact_uniform_log_score(alpha)

    def expected(table):
        terms = jd.score_entropy_terms(UNIFORM, jnp.asarray(table[rows], jnp.float32),
                                       jnp.asarray(x0), jnp.asarray(x_t),
                                       jnp.full(len(x0), t, jnp.float32))
        return float(np.sum(weight * np.asarray(terms, np.float64)))

    best = expected(exact)
    rng = np.random.default_rng(0)
    for scale in (0.3, 0.1, 0.03):
        assert expected(exact + scale * rng.standard_normal(exact.shape)) > best


def _absorbing_oracle(x, t, cond=None):
    """o = log p(x0^l = y | unmasked x) + log N: SEDD's absorbing scaling turns it into the
    exact concrete score."""
    return o.masked_oracle()(x, t) + np.log(3)


def _uniform_oracle(x, t, cond=None):
    alpha = jd.sedd.keep_probability(UNIFORM, t[0])
    per_token = alpha * jnp.eye(3) + (1 - alpha) / 3
    seqs = jnp.asarray(o.SEQUENCES)
    kernel = jnp.prod(per_token[seqs[:, None, :], seqs[None, :, :]], axis=-1)
    p_t = kernel @ jnp.asarray(o.PROBS, jnp.float32)
    index = o.state_index(x, 3)
    powers = jnp.asarray(POWERS)
    neighbour = (index[:, None, None]
                 + (jnp.arange(3)[None, None, :] - x[..., None]) * powers[None, :, None])
    return jnp.log(p_t[neighbour] / p_t[index][:, None, None])


@pytest.mark.parametrize("process, oracle", [(ABSORBING, _absorbing_oracle),
                                             (UNIFORM, _uniform_oracle)],
                         ids=["absorbing", "uniform"])
def test_tau_leaping_with_the_exact_score_reproduces_the_source(process, oracle):
    samples = jax.jit(lambda k: jd.sedd_sample(k, oracle, process, (NUM_SAMPLES, o.LENGTH),
                                               num_steps=200))(jax.random.key(0))
    assert o.total_variation(np.asarray(samples)) < TV_TOL


def test_the_bound_with_the_exact_score_is_the_nll_for_absorbing_and_above_it_for_uniform():
    x0 = jnp.asarray(np.tile(o.SEQUENCES[[0, 40, 77]], (512, 1)))
    exact = -np.log(o.PROBS[[0, 40, 77]])
    for process, oracle in ((ABSORBING, _absorbing_oracle), (UNIFORM, _uniform_oracle)):
        bound = np.asarray(jax.jit(lambda k, p=process, f=oracle: jd.sedd_elbo(
            k, f, p, x0, num_samples=16))(jax.random.key(4))).reshape(512, 3).T
        mean, stderr = bound.mean(axis=1), bound.std(axis=1) / np.sqrt(512)
        if process.graph == "absorbing":   # tight, as masked diffusion's (any-order AR)
            assert np.all(np.abs(mean - exact) <= 4 * stderr + 1e-4), (mean, exact)
        else:
            assert np.all(mean >= exact - 4 * stderr), (mean, exact)
    assert float(jd.sedd_prior_kl(UNIFORM, x0[:1])[0]) == pytest.approx(0.0, abs=1e-6)


def test_the_loss_and_its_gradient_are_finite_at_the_edges_of_time():
    """t = 0 with an output whose exp overflows once scaled (absorbing: +69 nats), and the
    largest float32 time below 1, where the bound's stratified grid can land."""
    x0 = jnp.asarray(o.SEQUENCES[:4])
    times = jnp.asarray([0.0, 1e-6, 0.5, 1.0 - 2.0 ** -24])
    for process in (ABSORBING, UNIFORM):
        for scale in (0.1, 30.0):
            def loss(w, p=process):
                fn = lambda x, t, cond=None: w * jnp.ones(x.shape + (p.vocab_size,))  # noqa
                return jnp.sum(jd.sedd_loss(jax.random.key(0), fn, p, x0, t=times))
            value, grad = jax.value_and_grad(loss)(scale)
            assert np.isfinite(float(value)) and np.isfinite(float(grad)), (process, scale)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="mask_id is required for the absorbing graph"):
        jd.sedd_process("absorbing", vocab_size=4)
    with pytest.raises(ValueError, match="graph must be one of"):
        jd.sedd_process("gaussian", vocab_size=4)
    with pytest.raises(ValueError, match="contains the \\[MASK\\] id"):
        jd.sedd_loss(jax.random.key(0), _absorbing_oracle, ABSORBING,
                     jnp.full((2, 4), o.MASK_ID))
    with pytest.raises(TypeError, match="process must be a SEDDProcess"):
        jd.sedd_sample(jax.random.key(0), _absorbing_oracle, LOGLINEAR_MASKED, (2, 4),
                       num_steps=2)


LOGLINEAR_MASKED = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
