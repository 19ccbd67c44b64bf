"""Likelihoods with the oracle denoiser on data whose density is known exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxdiff as jd
from jaxdiff.gaussian.analytic import THREE_GAUSSIANS, GaussianMixture

MEAN, STD = 0.5, 0.3
GAUSS_1D = GaussianMixture([1.0], [[MEAN]], [STD])
TRUE_NATS = 0.5 * np.log(2 * np.pi * np.e * STD**2)   # 0.21497


def _expected_vlb(betas: np.ndarray) -> float:
    """E[VLB] for N(MEAN, STD^2) data and the oracle, term by term in float64: reverse
    variance beta_t, continuous Gaussian decoder with variance beta_1, prior KL."""
    s2 = STD**2
    ab = np.cumprod(1 - betas)
    prev = np.append(1.0, ab[:-1])
    post = betas * (1 - prev) / (1 - ab)
    c0 = np.sqrt(prev) * betas / (1 - ab)
    var_x0 = s2 * (1 - ab) / (ab * s2 + 1 - ab)         # Var(x0 | x_t)
    kl = 0.5 * (np.log(betas[1:] / post[1:]) + post[1:] / betas[1:]
                + c0[1:] ** 2 * var_x0[1:] / betas[1:] - 1)
    decoder = 0.5 * np.log(2 * np.pi * betas[0]) + var_x0[0] / (2 * betas[0])
    prior = 0.5 * (ab[-1] * (MEAN**2 + s2) + (1 - ab[-1]) - 1 - np.log(1 - ab[-1]))
    return decoder + kl.sum() + prior


def _quantile_sample(n):
    """Stratified N(MEAN, STD^2) draws: removes the x0 sampling noise from the estimate."""
    return jnp.asarray(MEAN + STD * stats.norm.ppf((np.arange(n) + 0.5) / n)[:, None],
                       jnp.float32)


@pytest.mark.parametrize("name,schedule,betas,expected", [
    ("cosine", jd.gaussian.cosine_schedule(num_steps=1000), None, 0.21697),
    ("linear", jd.gaussian.linear_schedule(num_steps=1000), np.linspace(1e-4, 0.02, 1000),
     0.21871),
])
def test_vlb_of_gaussian_data_is_a_tight_upper_bound(name, schedule, betas, expected):
    if betas is None:
        f = np.cos((np.arange(1001) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
        betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    exact = _expected_vlb(betas)
    assert exact == pytest.approx(expected, abs=1e-5)          # the numbers
    assert TRUE_NATS <= exact <= TRUE_NATS + 0.01              # bound, and tight
    # The library's Monte Carlo bound agrees with the exact expectation within 4 std errors.
    x0 = _quantile_sample(60000)
    nats = jax.jit(lambda k: jd.gaussian.vlb_terms(
        k, GAUSS_1D.denoise_fn(schedule), schedule, x0, num_bins=None).sum(0))(jax.random.key(0))
    nats = np.asarray(nats, np.float64)
    std_err = nats.std() / np.sqrt(len(nats))
    assert abs(nats.mean() - exact) < 4 * std_err
    assert std_err < 0.006


def test_nll_bits_per_dim_is_the_vlb_in_bits():
    s = jd.gaussian.cosine_schedule(num_steps=50)
    x0 = _quantile_sample(64)
    key = jax.random.key(3)
    terms = jd.gaussian.vlb_terms(key, GAUSS_1D.denoise_fn(s), s, x0, num_bins=None)
    bpd = jd.gaussian.nll_bits_per_dim(key, GAUSS_1D.denoise_fn(s), s, x0, num_bins=None)
    np.testing.assert_allclose(np.asarray(bpd), np.asarray(terms.sum(0)) / np.log(2), rtol=1e-6)


@pytest.mark.parametrize("schedule", [jd.gaussian.cosine_schedule(num_steps=1000),
                                      jd.gaussian.linear_schedule(num_steps=1000)])
def test_ode_nll_matches_the_true_density_per_example(schedule):
    x0 = jnp.asarray(GAUSS_1D.sample(np.random.default_rng(0), 2000), jnp.float32)
    nats = jax.jit(lambda k: jd.gaussian.ode_nll(k, GAUSS_1D.denoise_fn(schedule), schedule,
                                                 x0))(jax.random.key(0))
    true = -stats.norm.logpdf(np.asarray(x0[:, 0], np.float64), MEAN, STD)
    err = np.asarray(nats, np.float64) - true
    assert abs(err.mean()) < 0.002
    assert np.abs(err).max() < 0.02


def test_ode_nll_of_a_2d_mixture_exact_and_hutchinson():
    s = jd.gaussian.linear_schedule(num_steps=1000)
    x0 = jnp.asarray(THREE_GAUSSIANS.sample(np.random.default_rng(1), 1000), jnp.float32)
    x64 = np.asarray(x0, np.float64)
    true = -np.log(sum(w * stats.multivariate_normal.pdf(x64, m, sd**2)
                       for w, m, sd in zip(THREE_GAUSSIANS.weights, THREE_GAUSSIANS.means,
                                           THREE_GAUSSIANS.stds, strict=True)))
    fn = THREE_GAUSSIANS.denoise_fn(s)
    exact = np.asarray(jd.gaussian.ode_nll(jax.random.key(0), fn, s, x0, trace="exact"))
    assert np.abs(exact - true).mean() / 2 < 0.01          # nats per dimension
    assert np.percentile(np.abs(exact - true) / 2, 99) < 0.02
    hutch = np.asarray(jd.gaussian.ode_nll(jax.random.key(0), fn, s, x0, trace="hutchinson"))
    # Hutchinson is unbiased: its mean matches the exact trace's mean.
    assert abs(hutch.mean() - exact.mean()) < 4 * (hutch - exact).std() / np.sqrt(len(x0))


def test_ode_bits_per_dim_of_discrete_data_bound_the_bin_probability():
    """Dequantized ODE bits/dim of 8-bit data on a fine grid agree with the exact probability
    mass of the bins under the (continuous) data density."""
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    rng = np.random.default_rng(2)
    x0 = np.clip(np.round((GAUSS_1D.sample(rng, 2000) + 1) * 127.5) / 127.5 - 1, -1, 1)
    mass = (stats.norm.cdf(x0 + 1 / 255, MEAN, STD) - stats.norm.cdf(x0 - 1 / 255, MEAN, STD))
    true_bits = -np.log2(mass).mean()
    bpd = jd.gaussian.nll_bits_per_dim(jax.random.key(0), GAUSS_1D.denoise_fn(s), s,
                                       jnp.asarray(x0, jnp.float32), method="ode", num_bins=256)
    # Dequantization bounds the discrete NLL from above (tightly for a smooth density).
    assert true_bits - 0.01 < float(bpd.mean()) < true_bits + 0.05


def test_likelihoods_are_jittable_and_equal_eager():
    s = jd.gaussian.cosine_schedule(num_steps=20)
    x0 = _quantile_sample(8)
    fn = GAUSS_1D.denoise_fn(s)
    for method in ["vlb", "ode"]:
        run = lambda k, x, m=method: jd.gaussian.nll_bits_per_dim(  # noqa: E731
            k, fn, s, x, method=m, num_bins=None)
        np.testing.assert_allclose(np.asarray(jax.jit(run)(jax.random.key(0), x0)),
                                   np.asarray(run(jax.random.key(0), x0)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="elbo"), "method"),
    (dict(method="ode", trace="skilling"), "trace"),
    (dict(variance="fixed"), "variance"),
    (dict(num_steps=1), "num_steps"),
])
def test_bad_arguments_are_named(kwargs, match):
    s = jd.gaussian.cosine_schedule(num_steps=10)
    with pytest.raises(ValueError, match=match):
        jd.gaussian.nll_bits_per_dim(jax.random.key(0), lambda x, t, c: x, s,
                                     jnp.zeros((2, 1)), **kwargs)


def test_trace_through_a_unet_with_attention_equals_the_dense_jacobian():
    """The ODE's trace term uses vector-Jacobian products (the models' attention is
    reverse-mode only): through a UNet with attention, the exact trace equals the trace of
    its dense Jacobian and Hutchinson's estimate equals p^T J p, per example."""
    import jaxdiff.models as jm
    from jaxdiff.gaussian.likelihood import _trace_fn
    config = jm.UNetConfig(image_size=4, in_channels=1, base_channels=8, channel_mults=(1,),
                           num_res_blocks=1, attention_levels=(0,), head_channels=4,
                           num_groups=4)
    graphdef, params, rest = jm.init(config, key=jax.random.key(0))
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape),
                          params)  # the zero-initialised output layers would give J = 0
    apply = jm.make_apply_fn(graphdef, rest)
    y = jax.random.normal(jax.random.key(2), (2, 4, 4, 1))

    def denoiser(y):
        return apply(params, y, jnp.full((2,), 5, jnp.int32))

    jacobian = jax.jit(jax.jacrev(denoiser))(y).reshape(2, 16, 2, 16)
    expected = np.array([np.trace(jacobian[b, :, b, :]) for b in range(2)])
    exact = jax.jit(lambda y: _trace_fn(denoiser, "exact", y.shape, y.dtype)(y, None)[1])(y)
    np.testing.assert_allclose(exact, expected, rtol=1e-4, atol=1e-4)
    hutchinson = jax.jit(lambda y, p: _trace_fn(denoiser, "hutchinson", y.shape, y.dtype)(y, p)[1])
    for seed in range(3):  # Hutchinson's one-probe estimate is exactly p^T J p per example
        probe = jax.random.rademacher(jax.random.key(seed), y.shape, jnp.float32)
        estimate = hutchinson(y, probe)
        p = np.asarray(probe).reshape(2, 16)
        expected_b = [p[b] @ jacobian[b, :, b, :] @ p[b] for b in range(2)]
        np.testing.assert_allclose(estimate, expected_b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["rectified_flow", "vp_cosine", "vp_linear", "ve"])
@pytest.mark.parametrize("prediction", ["velocity", "eps"])
def test_path_ode_nll_of_gaussian_data_is_its_log_density(name, prediction):
    """x0 ~ N(0, 0.5^2 I) in 2-D with its exact denoiser and the exact trace: the ODE's
    -log p(x0) equals the Gaussian's (the data sit at sigma_e = 0.002, the prior at
    sigma_e = 80: both cost < 1e-4 nats here). The integrator is second order: the largest
    error is 0.024 / 0.0058 / 0.0015 / 0.0004 nats at 50 / 100 / 200 / 400 steps, the same
    on every path (they are one ODE in x / alpha against sigma / alpha)."""
    from jaxdiff import gaussian

    with jax.enable_x64(True):
        path = gaussian.get_path(name)
        data = gaussian.GaussianMixture([1.0], [[0.0, 0.0]], [0.5])
        x0 = jnp.asarray(data.sample(np.random.default_rng(0), 16))
        nll = gaussian.path_ode_nll(jax.random.key(0), data.path_denoise_fn(path, prediction),
                                    path, x0, prediction=prediction, num_steps=200,
                                    trace="exact")
        expected = (0.5 * (np.asarray(x0) ** 2).sum(1) / 0.25 + np.log(2 * np.pi * 0.25))
        np.testing.assert_allclose(nll, expected, atol=2e-3)


def test_the_clipped_x0_bound_is_the_bound_of_the_clipped_model():
    """improved DDPM's estimator: clip_x0=True equals the plain bound of an x0-model whose
    output is clipped to [-1, 1]; for an in-range model it changes nothing."""
    from jaxdiff import gaussian

    schedule = gaussian.cosine_schedule(num_steps=50)
    x0 = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 3)), jnp.float32)
    wild = lambda x_t, t, cond=None: 3.0 * x_t                       # noqa: E731 x0 out of range
    clipped = lambda x_t, t, cond=None: jnp.clip(3.0 * x_t, -1, 1)    # noqa: E731
    key = jax.random.key(0)
    got = gaussian.vlb_terms(key, wild, schedule, x0, prediction="x0", clip_x0=True)
    want = gaussian.vlb_terms(key, clipped, schedule, x0, prediction="x0")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert float(gaussian.vlb_terms(key, wild, schedule, x0, prediction="x0").sum()) > float(
        got.sum())
    np.testing.assert_allclose(
        gaussian.vlb_terms(key, clipped, schedule, x0, prediction="x0", clip_x0=True), want,
        rtol=1e-6)
    with pytest.raises(ValueError, match="clip_x0 is an option of the vlb method"):
        gaussian.nll_bits_per_dim(key, wild, schedule, x0, method="ode", clip_x0=True)
