"""The forward process and parameterisations against independent float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff as jd


def test_iterating_one_step_kernels_matches_the_closed_form_marginal():
    s = jd.gaussian.linear_schedule(num_steps=1000)
    betas = np.asarray(s.betas, np.float64)
    # Exact moment recursion of x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z, x_0 = 0.7.
    mean, var = 0.7, 0.0
    for b in betas:
        mean, var = np.sqrt(1 - b) * mean, (1 - b) * var + b
    ab = np.asarray(s.alpha_bars, np.float64)[-1]
    assert mean == pytest.approx(np.sqrt(ab) * 0.7, rel=1e-4)
    assert var == pytest.approx(1 - ab, rel=1e-6)

    # Monte Carlo: simulate the chain in JAX and compare with q_sample at every 100th step.
    n = 20000
    x0 = jnp.full((n, 1), 0.7)

    def step(x, inputs):
        beta, key = inputs
        x = jnp.sqrt(1 - beta) * x + jnp.sqrt(beta) * jax.random.normal(key, x.shape)
        return x, x[:, 0]

    keys = jax.random.split(jax.random.key(0), 1000)
    _, path = jax.lax.scan(step, x0, (s.betas, keys))
    for t in [0, 99, 499, 999]:
        direct = jd.gaussian.q_sample(s, x0, jnp.full((n,), t, jnp.int32),
                                      jax.random.normal(jax.random.key(t + 1), x0.shape))
        ab_t = np.asarray(s.alpha_bars, np.float64)[t]
        for draws in (np.asarray(path[t]), np.asarray(direct[:, 0])):
            assert draws.mean() == pytest.approx(np.sqrt(ab_t) * 0.7, abs=4 * np.sqrt(1 / n))
            assert draws.var() == pytest.approx(1 - ab_t, rel=0.05, abs=1e-5)


def test_q_posterior_equals_brute_force_gaussian_conditioning():
    s = jd.gaussian.cosine_schedule(num_steps=200)
    ab = np.asarray(s.alpha_bars, np.float64)
    betas = np.asarray(s.betas, np.float64)
    rng = np.random.default_rng(0)
    t = np.array([1, 5, 50, 150, 199])
    x0 = rng.normal(size=(5, 3))
    x_t = rng.normal(size=(5, 3))
    mean, var, log_var = jd.gaussian.q_posterior(
        s, jnp.asarray(x0, jnp.float32), jnp.asarray(x_t, jnp.float32), jnp.asarray(t))
    for b, ti in enumerate(t):
        # Joint of (x_{t-1}, x_t) given x0; condition the first on the second.
        a_prev, a_t = ab[ti - 1], ab[ti]
        cov = np.array([[1 - a_prev, np.sqrt(1 - betas[ti]) * (1 - a_prev)],
                        [np.sqrt(1 - betas[ti]) * (1 - a_prev), 1 - a_t]])
        mu_prev, mu_t = np.sqrt(a_prev) * x0[b], np.sqrt(a_t) * x0[b]
        cond_mean = mu_prev + cov[0, 1] / cov[1, 1] * (x_t[b] - mu_t)
        cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        np.testing.assert_allclose(np.asarray(mean[b]), cond_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(var[b]), cond_var, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(log_var[b]), np.log(cond_var), rtol=1e-4)


def test_q_posterior_at_the_first_step_returns_x0():
    s = jd.gaussian.linear_schedule(num_steps=100)
    x0, x_t = jnp.ones((2, 4)), jnp.zeros((2, 4))
    mean, var, _ = jd.gaussian.q_posterior(s, x0, x_t, jnp.zeros((2,), jnp.int32))
    np.testing.assert_allclose(np.asarray(mean), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(var), 0.0, atol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_conversions_round_trip(prediction):
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    key1, key2 = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(key1, (6, 5))
    eps = jax.random.normal(key2, (6, 5))
    t = jnp.array([0, 10, 200, 500, 900, 998])
    x_t = jd.gaussian.q_sample(s, x0, t, eps)
    alpha, sigma = jd.gaussian.alpha_sigma(s, t)
    target = jd.gaussian.prediction_target(prediction, x0, eps, alpha, sigma)
    x0_hat, eps_hat = jd.gaussian.x0_eps_from_prediction(prediction, target, x_t, alpha, sigma)
    # eps -> x0 divides by alpha (tiny at t=998); compare where the conversion is well posed.
    well_posed = slice(None, 5) if prediction == "eps" else slice(None)
    np.testing.assert_allclose(np.asarray(x0_hat[well_posed]), np.asarray(x0[well_posed]),
                               atol=2e-3)
    np.testing.assert_allclose(np.asarray(eps_hat[1:]), np.asarray(eps[1:]), atol=2e-3)
    # v by its definition, in float64.
    if prediction == "v":
        a, sg = np.asarray(alpha, np.float64)[:, None], np.asarray(sigma, np.float64)[:, None]
        ref = a * np.asarray(eps, np.float64) - sg * np.asarray(x0, np.float64)
        np.testing.assert_allclose(np.asarray(target), ref, atol=1e-5)


@pytest.mark.parametrize("call,exc,match", [
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4,)), jnp.zeros((4,), jnp.int32),
                                    jnp.ones((4,))), ValueError, "x0"),
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4, 2), jnp.int32), jnp.zeros((4,), jnp.int32),
                                    jnp.ones((4, 2))), TypeError, "x0"),
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4, 2)), jnp.zeros((4,)), jnp.ones((4, 2))),
     TypeError, "t"),
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4, 2)), jnp.full((4,), 10), jnp.ones((4, 2))),
     ValueError, r"t must lie in \[0, 10\)"),
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4, 2)), jnp.zeros((3,), jnp.int32),
                                    jnp.ones((4, 2))), ValueError, "t must have shape"),
    (lambda s: jd.gaussian.q_sample(s, jnp.ones((4, 2)), jnp.zeros((4,), jnp.int32),
                                    jnp.ones((4, 3))), ValueError, "noise"),
    (lambda s: jd.gaussian.prediction_target("score", jnp.ones((1, 1)), jnp.ones((1, 1)),
                                             jnp.ones(1), jnp.ones(1)), ValueError, "prediction"),
])
def test_bad_arguments_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call(jd.gaussian.cosine_schedule(num_steps=10))


def test_analytic_mixture_eps_is_minus_sigma_times_the_score():
    from scipy import stats

    from jaxdiff.gaussian.analytic import THREE_GAUSSIANS as mix

    alpha, sigma = 0.8, 0.6
    x = np.random.default_rng(0).normal(size=(5, 2))

    def log_p(z):   # the noised mixture's density, float64 via scipy
        return np.log(sum(w * stats.multivariate_normal.pdf(
            z, alpha * m, (alpha * sd) ** 2 + sigma**2)
            for w, m, sd in zip(mix.weights, mix.means, mix.stds, strict=True)))

    h = 1e-5
    score = np.stack([(log_p(x + h * e) - log_p(x - h * e)) / (2 * h) for e in np.eye(2)], -1)
    eps = mix.eps(jnp.asarray(x, jnp.float32), jnp.full((5,), alpha), jnp.full((5,), sigma))
    np.testing.assert_allclose(np.asarray(eps), -sigma * score, rtol=1e-4, atol=1e-4)
