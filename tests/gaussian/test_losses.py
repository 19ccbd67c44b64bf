"""Losses and VLB terms against scipy and closed-form Gaussian expectations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxdiff as jd
from jaxdiff.gaussian.analytic import GaussianMixture

GAUSS_1D = GaussianMixture([1.0], [[0.5]], [0.3])


def test_normal_kl_matches_closed_form_and_monte_carlo():
    m1, lv1, m2, lv2 = 0.3, np.log(0.5), -0.2, np.log(1.7)
    kl = float(jd.gaussian.normal_kl(m1, lv1, m2, lv2))
    x = np.random.default_rng(0).normal(m1, np.sqrt(0.5), 400000)
    mc = np.mean(stats.norm.logpdf(x, m1, np.sqrt(0.5)) - stats.norm.logpdf(x, m2, np.sqrt(1.7)))
    assert kl == pytest.approx(mc, abs=3e-3)
    assert kl == pytest.approx(0.5 * (np.log(1.7 / 0.5) + (0.5 + 0.25) / 1.7 - 1), rel=1e-6)


def test_discretized_likelihood_is_a_distribution_over_the_grid():
    grid = jnp.linspace(-1.0, 1.0, 256)
    for mean, std in [(0.1, 0.05), (-0.99, 0.3), (0.7, 1e-3), (0.0, 3.0)]:
        logp = jd.gaussian.discretized_gaussian_log_likelihood(
            grid, jnp.full_like(grid, mean), jnp.full_like(grid, 2 * np.log(std)))
        assert float(jnp.exp(logp).sum()) == pytest.approx(1.0, abs=1e-4)
        # Interior bins against scipy's CDF difference in float64.
        g = np.asarray(grid, np.float64)[1:-1]
        lower_tail = stats.norm.cdf(g + 1 / 255, mean, std) - stats.norm.cdf(g - 1 / 255, mean, std)
        upper_tail = stats.norm.sf(g - 1 / 255, mean, std) - stats.norm.sf(g + 1 / 255, mean, std)
        ref = np.log(np.maximum(np.where(g > mean, upper_tail, lower_tail), 1e-300))
        ok = ref > -60
        np.testing.assert_allclose(np.asarray(logp[1:-1])[ok], ref[ok], rtol=2e-4, atol=2e-4)


def test_discretized_likelihood_has_finite_gradients_at_the_edges():
    x = jnp.array([-1.0, 1.0, 0.0])
    grad = jax.grad(lambda m, lv: jd.gaussian.discretized_gaussian_log_likelihood(
        x, m, lv).sum(), argnums=(0, 1))(jnp.array([0.9, -0.9, 5.0]), jnp.full((3,), -9.0))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grad)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_loss_of_the_optimal_denoiser_is_the_posterior_variance(prediction):
    """For 1-D data N(m, s^2): Var(x0|x_t) = s^2 sigma^2 / (alpha^2 s^2 + sigma^2),
    Var(eps|x_t) = alpha^2/sigma^2 Var(x0|x_t), Var(v|x_t) = Var(x0|x_t)/sigma^2."""
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    n, s2 = 50000, 0.09
    x0 = jnp.asarray(GAUSS_1D.sample(np.random.default_rng(0), n), jnp.float32)
    for step in [20, 300, 700]:
        t = jnp.full((n,), step, jnp.int32)
        losses = jd.gaussian.loss(jax.random.key(step), GAUSS_1D.denoise_fn(s, prediction), s,
                                  x0, prediction=prediction, t=t)
        a2 = float(np.asarray(s.alpha_bars, np.float64)[step])
        var_x0 = s2 * (1 - a2) / (a2 * s2 + 1 - a2)
        expected = {"x0": var_x0, "eps": a2 / (1 - a2) * var_x0, "v": var_x0 / (1 - a2)}
        assert float(losses.mean()) == pytest.approx(expected[prediction], rel=0.02)


def test_min_snr_weights():
    lam = jnp.log(jnp.array([0.1, 5.0, 100.0]))
    snr = np.array([0.1, 5.0, 100.0])
    clipped = np.minimum(snr, 5.0)
    for pred, ref in [("eps", clipped / snr), ("x0", clipped), ("v", clipped / (snr + 1))]:
        np.testing.assert_allclose(np.asarray(jd.gaussian.snr_weight(pred, "min_snr", lam)), ref,
                                   rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jd.gaussian.snr_weight("eps", "uniform", lam)), 1.0)


def test_vlb_term_matches_float64_kl_and_decoder():
    s = jd.gaussian.linear_schedule(num_steps=1000)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (4, 3))
    x_t = rng.normal(size=(4, 3))
    eps_hat = rng.normal(size=(4, 3))
    t = np.array([0, 1, 400, 999])
    got = jd.gaussian.vlb_term(s, jnp.asarray(eps_hat, jnp.float32), jnp.asarray(x0, jnp.float32),
                               jnp.asarray(x_t, jnp.float32), jnp.asarray(t), num_bins=None)
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np.cumprod(1 - betas)
    prev = np.append(1.0, ab[:-1])
    for b, ti in enumerate(t):
        x0_hat = (x_t[b] - np.sqrt(1 - ab[ti]) * eps_hat[b]) / np.sqrt(ab[ti])
        c0 = np.sqrt(prev[ti]) * betas[ti] / (1 - ab[ti])
        ct = np.sqrt(1 - betas[ti]) * (1 - prev[ti]) / (1 - ab[ti])
        mu_model = c0 * x0_hat + ct * x_t[b]
        if ti == 0:
            ref = -stats.norm.logpdf(x0[b], mu_model, np.sqrt(betas[0])).sum()
        else:
            mu_true = c0 * x0[b] + ct * x_t[b]
            var_true = betas[ti] * (1 - prev[ti]) / (1 - ab[ti])
            ref = (0.5 * (np.log(betas[ti] / var_true) + var_true / betas[ti]
                          + (mu_true - mu_model) ** 2 / betas[ti] - 1)).sum()
        assert float(got[b]) == pytest.approx(ref, rel=2e-3, abs=2e-3)


def test_hybrid_loss_adds_the_scaled_vlb_and_stops_the_mean_gradient():
    s = jd.gaussian.cosine_schedule(num_steps=100)
    x0 = jax.random.uniform(jax.random.key(0), (4, 2, 2, 3), minval=-1, maxval=1)
    t = jnp.array([0, 3, 50, 99])

    def denoise_fn(params, x_t, t, cond=None):
        return jnp.concatenate([params["mean"] * x_t, jnp.tanh(params["var"] * x_t)], axis=-1)

    params = {"mean": jnp.float32(0.3), "var": jnp.float32(0.7)}
    key = jax.random.key(1)

    def hybrid(p):
        return jd.gaussian.loss(key, lambda *a: denoise_fn(p, *a), s, x0, t=t,
                                learned_variance=True).mean()

    def simple_only(p):
        fn = lambda x_t, t, c: denoise_fn(p, x_t, t)[..., :3]  # noqa: E731
        return jd.gaussian.loss(key, fn, s, x0, t=t).mean()

    # The mean's gradient comes from L_simple alone (stop-gradient in the VLB term).
    g_hybrid, g_simple = jax.grad(hybrid)(params), jax.grad(simple_only)(params)
    assert float(g_hybrid["mean"]) == pytest.approx(float(g_simple["mean"]), rel=1e-5)
    assert abs(float(g_hybrid["var"])) > 0
    # Value: L_simple + 0.001 * T * L_t / (D ln 2), with L_t from vlb_term.
    noise = jax.random.normal(jax.random.split(key)[1], x0.shape)
    x_t = jd.gaussian.q_sample(s, x0, t, noise)
    vlb = jd.gaussian.vlb_term(s, denoise_fn(params, x_t, t), x0, x_t, t, variance="learned")
    expected = simple_only(params) + 0.001 * 100 * float(vlb.mean()) / (12 * math.log(2))
    assert float(hybrid(params)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(prediction="score"), ValueError, "prediction"),
    (dict(weighting="p2"), ValueError, "weighting"),
    (dict(t=jnp.array([0, 10])), ValueError, "t must lie"),
    (dict(learned_variance=True), ValueError, "twice the channels"),
])
def test_bad_arguments_are_named(kwargs, exc, match):
    s = jd.gaussian.cosine_schedule(num_steps=10)
    with pytest.raises(exc, match=match):
        jd.gaussian.loss(jax.random.key(0), lambda x, t, c: x, s, jnp.zeros((2, 3)), **kwargs)
