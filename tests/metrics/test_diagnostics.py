"""Per-timestep diagnostics against analytic oracles: Gaussian data with its optimal denoiser,
and brute-force Bayes on the tiny discrete source of tests/discrete/oracles.py."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete, gaussian
from jaxdiff.metrics import diagnostics as dg
from tests.discrete import oracles as o

M, S, D, B = 0.3, 0.5, 16, 2048  # data N(M, S^2 I_D), batch size
T = 100


@pytest.fixture(scope="module")
def setup():
    schedule = gaussian.linear_schedule(num_steps=T)
    mixture = gaussian.GaussianMixture([1.0], [[M] * D], [S])
    x0 = jnp.asarray(mixture.sample(np.random.default_rng(0), B), jnp.float32)
    lam = np.asarray(schedule.log_snrs, np.float64)
    alpha2, sigma2 = 1 / (1 + np.exp(-lam)), 1 / (1 + np.exp(lam))
    return schedule, mixture, x0, alpha2, sigma2


def _chain_mse(alpha2, sigma2, t, num_steps):
    """Exact MSE of deterministic DDIM from x_t with the optimal denoiser of N(M, S^2).

    Each step maps y = x - alpha m linearly: y_s = y_t (a_s a_t S^2 + s_s s_t) / v_t with
    v = a^2 S^2 + s^2 (the data level has a = 1, s = 0), so x0' - x0 = (c a_t - 1) d + c s_t eps.
    """
    taus = (np.arange(num_steps) * t) // max(num_steps - 1, 1)
    a, s = np.sqrt(alpha2[taus]), np.sqrt(sigma2[taus])
    c = 1.0
    for i in range(num_steps - 1, -1, -1):
        a_prev, s_prev = (a[i - 1], s[i - 1]) if i > 0 else (1.0, 0.0)
        c *= (a_prev * a[i] * S**2 + s_prev * s[i]) / (a[i] ** 2 * S**2 + s[i] ** 2)
    a_t, s_t = a[-1], s[-1]
    return (c * a_t - 1) ** 2 * S**2 + c**2 * s_t**2


def test_psnr_formula():
    np.testing.assert_allclose(dg.psnr(jnp.array([0.04, 4.0, 1e-4])), [20.0, 0.0, 46.0206],
                               rtol=1e-5)
    np.testing.assert_allclose(dg.psnr(0.01, data_range=1.0), 20.0, rtol=1e-6)
    assert np.isinf(dg.psnr(0.0))
    with pytest.raises(ValueError, match="data_range"):
        dg.psnr(0.1, data_range=0.0)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_reconstruction_matches_posterior_variance(setup, prediction):
    schedule, mixture, x0, alpha2, sigma2 = setup
    steps = np.array([0, 5, 30, 60, 99])
    fn = mixture.denoise_fn(schedule, prediction)
    rec = dg.reconstruction_error(jax.random.key(1), fn, schedule, x0, steps, num_steps=4,
                                  prediction=prediction)
    a2, s2 = alpha2[steps], sigma2[steps]
    posterior_var = S**2 * s2 / (a2 * S**2 + s2)
    tol = 5 * np.sqrt(2 / (B * D))  # 5 standard errors of a mean of squares
    np.testing.assert_allclose(rec.mse_one_step, posterior_var, rtol=tol)
    np.testing.assert_allclose(rec.psnr_one_step, 10 * np.log10(4 / rec.mse_one_step), rtol=1e-5)
    chain = [_chain_mse(alpha2, sigma2, t, 4) for t in steps]
    np.testing.assert_allclose(rec.mse_chain, chain, rtol=tol)
    np.testing.assert_allclose(rec.psnr_chain, 10 * np.log10(4 / rec.mse_chain), rtol=1e-5)
    # The one-step posterior mean is the MMSE estimate; a chain cannot beat it (beyond noise).
    assert np.all(np.asarray(rec.mse_chain) >= np.asarray(rec.mse_one_step) * (1 - tol))
    np.testing.assert_array_equal(rec.timesteps, steps)


def test_chain_with_more_steps_than_levels_and_the_ode_limit(setup):
    schedule, mixture, x0, alpha2, sigma2 = setup
    fn = mixture.denoise_fn(schedule, "eps")
    steps = np.array([3, 99])
    rec = dg.reconstruction_error(jax.random.key(2), fn, schedule, x0, steps, num_steps=100)
    tol = 5 * np.sqrt(2 / (B * D))
    # t = 3 with 100 steps: repeated levels are exact no-ops, so it equals the 4-level chain.
    np.testing.assert_allclose(_chain_mse(alpha2, sigma2, 3, 100),
                               _chain_mse(alpha2, sigma2, 3, 4), rtol=1e-12)
    np.testing.assert_allclose(rec.mse_chain, [_chain_mse(alpha2, sigma2, t, 100) for t in steps],
                               rtol=tol)
    # Near the ODE limit the chain transports N(alpha m, v) onto N(m, S^2) monotonically:
    # MSE -> 2 S^2 (1 - alpha S / sqrt(v)).
    a, s = np.sqrt(alpha2[99]), np.sqrt(sigma2[99])
    ode = 2 * S**2 * (1 - a * S / np.sqrt(a**2 * S**2 + s**2))
    np.testing.assert_allclose(rec.mse_chain[1], ode, rtol=0.05)


def _chain_gain(alpha2, sigma2, t, num_steps):
    """The gain c of _chain_mse: the chain maps x_t to M + c (x_t - alpha_t M)."""
    taus = (np.arange(num_steps) * t) // (num_steps - 1)
    a, s = np.sqrt(alpha2[taus]), np.sqrt(sigma2[taus])
    c = 1.0
    for i in range(num_steps - 1, -1, -1):
        a_prev, s_prev = (a[i - 1], s[i - 1]) if i > 0 else (1.0, 0.0)
        c *= (a_prev * a[i] * S**2 + s_prev * s[i]) / (a[i] ** 2 * S**2 + s[i] ** 2)
    return c


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_reconstruct_follows_each_examples_own_levels(setup, prediction):
    """Per-example t: each example's chain is the affine map of its own levels (exactly, not
    in the mean), whatever the other examples' levels."""
    schedule, mixture, x0, alpha2, sigma2 = setup
    t = np.array([0, 1, 3, 10, 42, 50, 99, 99])
    x = x0[:t.size]
    x_t = gaussian.q_sample(schedule, x, jnp.asarray(t, jnp.int32),
                            jax.random.normal(jax.random.key(7), x.shape))
    out = dg.ddim_reconstruct(mixture.denoise_fn(schedule, prediction), schedule, x_t,
                              jnp.asarray(t, jnp.int32), num_steps=4, prediction=prediction)
    gain = np.array([_chain_gain(alpha2, sigma2, tb, 4) for tb in t])[:, None]
    a_t = np.sqrt(alpha2[t])[:, None]
    expected = M + gain * (np.asarray(x_t, np.float64) - a_t * M)
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=0, atol=1e-5)


def test_the_chain_needs_two_steps(setup):
    schedule, mixture, x0, _, _ = setup
    fn = mixture.denoise_fn(schedule, "eps")
    with pytest.raises(ValueError, match="num_steps"):
        dg.reconstruction_error(jax.random.key(0), fn, schedule, x0, [5], num_steps=1)
    with pytest.raises(ValueError, match="num_steps"):
        dg.ddim_reconstruct(fn, schedule, x0, jnp.full((B,), 5, jnp.int32), num_steps=1)


def test_loss_curve_matches_closed_form(setup):
    schedule, mixture, x0, alpha2, sigma2 = setup
    post_var = S**2 * sigma2 / (alpha2 * S**2 + sigma2)  # E|x0_hat - x0|^2 per dim
    eps_var = alpha2 * S**2 / (alpha2 * S**2 + sigma2)   # E|eps_hat - eps|^2 per dim
    for prediction, per_step in [("x0", post_var), ("eps", eps_var)]:
        edges, curve = dg.loss_per_timestep(jax.random.key(3), mixture.denoise_fn(schedule,
                                            prediction), schedule, x0, num_buckets=10,
                                            prediction=prediction)
        np.testing.assert_array_equal(edges, np.arange(0, 101, 10))
        expected = [per_step[lo:hi].mean() for lo, hi in itertools.pairwise(edges)]
        # t varies inside a bucket: its spread adds to the MC error of each bucket mean.
        np.testing.assert_allclose(curve, expected, rtol=0.06)
        # Monotone in t: x0 error rises to S^2 = 0.25 (where it saturates, up to 1% MC noise);
        # eps error falls to 0.
        c = np.asarray(curve) * (1 if prediction == "x0" else -1)
        assert np.all(np.diff(c[:6]) > 0) and np.all(np.diff(c) > -0.01 * np.abs(c[1:]))


def test_bucket_edges():
    np.testing.assert_array_equal(dg.bucket_edges(25, 4), [0, 6, 12, 18, 25])
    with pytest.raises(ValueError, match="num_buckets"):
        dg.bucket_edges(5, 6)


def _source_x0(n, seed=0):
    idx = np.random.default_rng(seed).choice(len(o.PROBS), size=n, p=o.PROBS)
    return jnp.asarray(o.SEQUENCES[idx])


def _masked_expectation(mask_prob):
    """(E[# correct masked], E[# masked]) per sequence at mask probability p, brute force
    over the 81 sequences and 16 mask patterns, with the float32 oracle's argmax."""
    table = np.asarray(jnp.asarray(o.masked_oracle_table(), jnp.float32))
    pred = np.argmax(table, axis=-1)  # [256, L]
    right = 0.0
    for pattern in o.PATTERNS:
        z = np.where(pattern[None, :], o.MASK_ID, o.SEQUENCES)
        idx = np.asarray(o.state_index(jnp.asarray(z), o.NUM_SYMBOLS + 1))
        hits = ((pred[idx] == o.SEQUENCES) & pattern[None, :]).sum(axis=1)  # [81]
        k = pattern.sum()
        right = right + (o.PROBS * hits).sum() * mask_prob**k * (1 - mask_prob) ** (o.LENGTH - k)
    return right, o.LENGTH * mask_prob


def test_masked_token_accuracy_matches_brute_force():
    process = discrete.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    x0 = _source_x0(8192)
    acc = dg.masked_token_accuracy(jax.random.key(4), o.masked_oracle(), process, x0,
                                   num_buckets=5)
    # Mask probability t is uniform in each bucket; both counts are polynomials of degree
    # <= 4 in t, so 5-point Gauss-Legendre integrates them exactly.
    nodes, weights = np.polynomial.legendre.leggauss(5)
    expected, overall = [], []
    for lo, hi in itertools.pairwise(acc.edges):
        ts = lo + (hi - lo) * (nodes + 1) / 2
        right, masked = (np.sum(weights * np.array(v)) for v in zip(
            *[_masked_expectation(t) for t in ts], strict=True))
        expected.append(right / masked)
        overall.append((right + 2 * o.LENGTH - masked) / (2 * o.LENGTH))  # unmasked: correct
    n = np.asarray(acc.num_corrupted)
    se = np.sqrt(np.asarray(expected) * (1 - np.asarray(expected)) / n)
    np.testing.assert_array_less(np.abs(np.asarray(acc.corrupted) - expected), 5 * se + 1e-3)
    np.testing.assert_allclose(acc.overall, overall, atol=0.02)
    assert expected[0] > expected[-1] + 0.1  # more context, better guesses


def test_d3pm_token_accuracy_matches_brute_force():
    steps = 20
    absorbing = discrete.d3pm_process("absorbing", vocab_size=4, num_steps=steps,
                                      mask_id=o.MASK_ID)
    x0 = _source_x0(8192, seed=1)
    acc = dg.d3pm_token_accuracy(jax.random.key(5), o.masked_oracle(), absorbing, x0,
                                 num_buckets=4)
    np.testing.assert_array_equal(acc.edges, [0, 5, 10, 15, 20])
    # reciprocal schedule: mask probability after t + 1 steps is (t + 1) / T.
    expected = []
    for lo, hi in itertools.pairwise(acc.edges):
        parts = [_masked_expectation((t + 1) / steps) for t in range(lo, hi)]
        expected.append(sum(r for r, _ in parts) / sum(m for _, m in parts))
    se = np.sqrt(np.asarray(expected) * (1 - np.asarray(expected)) / np.asarray(acc.num_corrupted))
    np.testing.assert_array_less(np.abs(np.asarray(acc.corrupted) - expected), 5 * se + 1e-3)

    uniform = discrete.d3pm_process("uniform", vocab_size=3, num_steps=steps)
    alpha_bars = np.exp(np.asarray(uniform.log_alpha_bars, np.float64))[1:]
    acc = dg.d3pm_token_accuracy(jax.random.key(6), o.uniform_oracle(uniform,
                                 leave_one_out=False), uniform, x0, num_buckets=4)
    table = np.asarray(jnp.asarray(o.uniform_oracle_table(alpha_bars, leave_one_out=False),
                                   jnp.float32))
    pred = np.argmax(table, axis=-1)                                  # [T, 81 (x_t), L]
    lik = o.uniform_likelihood(alpha_bars)                            # [T, 81 x_t, 81 x0, L]
    joint = np.prod(lik, axis=-1) * o.PROBS[None, None, :]           # [T, x_t, x0]
    changed = o.SEQUENCES[:, None, :] != o.SEQUENCES[None, :, :]      # [x_t, x0, L]
    hit = pred[:, :, None, :] == o.SEQUENCES[None, None, :, :]        # [T, x_t, x0, L]
    right_t = np.einsum("kab,kabl->k", joint, hit & changed[None])
    changed_t = np.einsum("kab,abl->k", joint, changed)
    all_t = np.einsum("kab,kabl->k", joint, hit)
    exp_c = [right_t[lo:hi].sum() / changed_t[lo:hi].sum()
             for lo, hi in itertools.pairwise(acc.edges)]
    exp_all = [all_t[lo:hi].mean() / o.LENGTH for lo, hi in itertools.pairwise(acc.edges)]
    se = np.sqrt(np.asarray(exp_c) * (1 - np.asarray(exp_c)) / np.asarray(acc.num_corrupted))
    np.testing.assert_array_less(np.abs(np.asarray(acc.corrupted) - exp_c), 5 * se + 1e-3)
    np.testing.assert_allclose(acc.overall, exp_all, atol=0.02)


def test_bad_inputs_name_the_argument(setup):
    schedule, mixture, x0, _, _ = setup
    fn = mixture.denoise_fn(schedule, "eps")
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="timesteps"):
        dg.reconstruction_error(key, fn, schedule, x0, [0, T])
    with pytest.raises(ValueError, match="timesteps"):
        dg.reconstruction_error(key, fn, schedule, x0, [0.5])
    with pytest.raises(ValueError, match="num_steps"):
        dg.reconstruction_error(key, fn, schedule, x0, [1], num_steps=0)
    with pytest.raises(ValueError, match="prediction"):
        dg.loss_per_timestep(key, fn, schedule, x0, prediction="score")
    with pytest.raises(TypeError, match="schedule"):
        dg.loss_per_timestep(key, fn, None, x0)
    with pytest.raises(ValueError, match="x0"):
        dg.loss_per_timestep(key, fn, schedule, x0[0])
    process = discrete.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    with pytest.raises(ValueError, match="x0"):
        dg.masked_token_accuracy(key, o.masked_oracle(), process,
                                 jnp.full((2, o.LENGTH), o.MASK_ID))
    with pytest.raises(TypeError, match="process"):
        dg.d3pm_token_accuracy(key, o.masked_oracle(), process, _source_x0(4))
    with pytest.raises(ValueError, match="denoise_fn output"):
        dg.masked_token_accuracy(key, lambda z, t, c: jnp.zeros((4, o.LENGTH + 1, 4)),
                                 process, _source_x0(4))
