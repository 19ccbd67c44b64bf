"""Time densities and the weighted continuous-time loss, against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdiff import gaussian


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def _draw(density, path=None, n=20000, **options):
    return np.asarray(gaussian.draw_times(jax.random.key(0), n, path or gaussian.rectified_flow(),
                                          density=density, dtype=jnp.float64, **options))


def test_uniform_and_logit_normal_times_have_their_distributions():
    path = gaussian.vp_linear()
    u = _draw("uniform", path)
    assert u.min() >= path.t_min and u.max() <= path.t_max
    assert stats.kstest(u, stats.uniform(path.t_min, path.t_max - path.t_min).cdf).pvalue > 1e-3
    z = np.log(u := _draw("logit_normal", mean=0.5, std=0.8)) - np.log1p(-u)
    assert stats.kstest(z, stats.norm(0.5, 0.8).cdf).pvalue > 1e-3


def test_mode_times_follow_sd3_eq_20():
    """P(u <= q) = P(v >= f^-1(q)) for u = f(v) = 1 - v - s (cos^2(pi v / 2) - 1 + v)."""
    s = 1.29
    f = lambda v: 1 - v - s * (np.cos(np.pi * v / 2) ** 2 - 1 + v)  # noqa: E731
    u = _draw("mode", mode_scale=s)
    for q in (0.1, 0.3, 0.5, 0.7, 0.9):
        lo, hi = 0.0, 1.0
        for _ in range(60):             # f decreases on [0, 1]
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) > q else (lo, mid)
        assert abs((u <= q).mean() - (1 - lo)) < 0.012
    np.testing.assert_allclose(np.sort(_draw("mode", mode_scale=0.0)),
                               np.sort(_draw("uniform")), atol=0.02)   # s = 0: uniform


def test_log_normal_sigmas_are_edms():
    sigma = _draw("log_normal", gaussian.ve())
    assert stats.kstest(np.log(sigma), stats.norm(-1.2, 1.2).cdf).pvalue > 1e-3


def test_shift_is_sd3_eq_23():
    u = jnp.linspace(0, 1, 11)
    np.testing.assert_allclose(gaussian.shift_times(u, 3.0), 3 * u / (1 + 2 * u))
    assert gaussian.resolution_shift(512 * 512) == 2.0
    shifted = _draw("logit_normal", shift=3.0)
    assert np.median(shifted) > np.median(_draw("logit_normal")) + 0.2   # towards the noise


@pytest.mark.parametrize("name", ["vp_cosine", "vp_linear"])
def test_min_snr_on_a_vp_path_equals_the_discrete_weight(name):
    path = gaussian.get_path(name)
    t = jnp.linspace(0.05, 0.95, 7)
    for prediction in ("eps", "x0", "v"):
        np.testing.assert_allclose(
            gaussian.loss_weight(path, prediction, t, weighting="min_snr"),
            gaussian.snr_weight(prediction, "min_snr", path.log_snr(t)), rtol=1e-10)


def test_edm_weight_is_karras_eq_8_on_x0():
    sigma = jnp.asarray([0.01, 0.3, 2.0, 40.0])
    np.testing.assert_allclose(
        gaussian.loss_weight(gaussian.ve(), "x0", sigma, weighting="edm", sigma_data=0.5),
        (sigma**2 + 0.25) / (sigma * 0.5) ** 2, rtol=1e-10)


@pytest.mark.parametrize("weighting", ["min_snr", "edm", "sigmoid", "likelihood"])
@pytest.mark.parametrize("name", ["rectified_flow", "vp_cosine", "ve"])
def test_a_weighting_is_one_objective_whatever_the_prediction(weighting, name):
    """With the same (t, noise) and an output off by the same eps error, every prediction
    gives the same weighted loss: the weights live in eps space."""
    path = gaussian.get_path(name)
    rng = np.random.default_rng(1)
    x0 = jnp.asarray(rng.standard_normal((6, 4)))
    bias = jnp.asarray(rng.standard_normal((6, 4)))
    t = jnp.asarray(np.linspace(path.t_min, path.t_max, 8)[1:-1])

    def model(prediction):
        def fn(x_t, t, cond=None):   # eps_hat = eps + 0.1 bias, in the prediction's form
            alpha, sigma = path.alpha_sigma(t)
            eps = (x_t - alpha[:, None] * x0) / sigma[:, None]
            eps_hat = eps + 0.1 * bias
            x0_hat = (x_t - sigma[:, None] * eps_hat) / alpha[:, None]
            return gaussian.output_target(path, prediction, x0_hat, eps_hat, t)
        return fn

    losses = [gaussian.continuous_loss(jax.random.key(2), model(p), path, x0, prediction=p,
                                       t=t, weighting=weighting)
              for p in gaussian.CONTINUOUS_PREDICTIONS]
    for other in losses[1:]:
        np.testing.assert_allclose(other, losses[0], rtol=1e-8)


def test_likelihood_weighting_gives_vdms_diffusion_loss_of_gaussian_data():
    """x0 ~ N(0, s^2) in 1-D with its exact denoiser: E||eps - eps_hat||^2 =
    SNR s^2 / (SNR s^2 + 1), so L_inf = 1/2 [log(1 + s^2 e^lambda)] between the ends."""
    s, path = 0.7, gaussian.vp_cosine(log_snr_min=-12.0, log_snr_max=9.0)

    def exact_eps(x_t, t, cond=None):
        alpha, sigma = path.alpha_sigma(t)
        x0_hat = alpha * s**2 / (alpha**2 * s**2 + sigma**2) * x_t[:, 0]
        return ((x_t[:, 0] - alpha * x0_hat) / sigma)[:, None]

    x0 = s * jax.random.normal(jax.random.key(3), (200_000, 1), jnp.float64)
    loss = gaussian.continuous_loss(jax.random.key(4), exact_eps, path, x0, prediction="eps",
                                    weighting="likelihood")
    expected = 0.5 * (np.log1p(s**2 * np.exp(9.0)) - np.log1p(s**2 * np.exp(-12.0)))
    stderr = float(loss.std()) / np.sqrt(loss.size)
    assert abs(float(loss.mean()) - expected) < 4 * stderr, (float(loss.mean()), expected)


def test_flow_matching_loss_of_the_exact_velocity_is_its_conditional_variance():
    """On rectified flow the exact model's velocity loss is E Var(eps - x0 | x_t) > 0, and
    a model off by a constant adds that constant squared."""
    mixture, path = gaussian.THREE_GAUSSIANS, gaussian.rectified_flow()
    x0 = jnp.asarray(mixture.sample(np.random.default_rng(5), 4000))
    exact = mixture.path_denoise_fn(path, "velocity")
    base = gaussian.continuous_loss(jax.random.key(6), exact, path, x0)
    shifted = gaussian.continuous_loss(jax.random.key(6),
                                       lambda x, t, c=None: exact(x, t) + 0.3, path, x0)
    np.testing.assert_allclose(shifted - base, 0.09 + 0.6 * (
        exact(*_x_t(path, x0, jax.random.key(6))) - _target(path, x0, jax.random.key(6))
    ).mean(1), atol=1e-8)
    assert float(base.mean()) > 0


def _x_t(path, x0, key):
    key_t, key_noise = jax.random.split(key)
    t = gaussian.draw_times(key_t, x0.shape[0], path, dtype=x0.dtype)
    noise = jax.random.normal(key_noise, x0.shape, x0.dtype)
    return (1 - t)[:, None] * x0 + t[:, None] * noise, t


def _target(path, x0, key):
    key_t, key_noise = jax.random.split(key)
    return jax.random.normal(key_noise, x0.shape, x0.dtype) - x0


@pytest.mark.parametrize("call, message", [
    (lambda: _draw("beta"), "density must be one of"),
    (lambda: _draw("log_normal"), "density 'log_normal' draws sigma of the 've' path"),
    (lambda: _draw("uniform", mean=1.0), "mean / std parameterise"),
    (lambda: _draw("logit_normal", std=0.0), "std must be > 0"),
    (lambda: _draw("uniform", mode_scale=1.0), "mode_scale parameterises"),
    (lambda: gaussian.shift_times(jnp.ones(2), 0.0), "shift must be > 0"),
    (lambda: gaussian.continuous_loss(jax.random.key(0), None, gaussian.rectified_flow(),
                                      jnp.ones((2, 3)), t=jnp.asarray([0.5, 1.5])),
     r"t must lie in the rectified_flow path's interval \[0.0, 1.0\]"),
    (lambda: gaussian.continuous_loss(jax.random.key(0), None, gaussian.rectified_flow(),
                                      jnp.ones((2, 3)), density="logit_normal",
                                      weighting="likelihood"),
     "weighting 'likelihood' is an integral over uniform times"),
    (lambda: gaussian.loss_weight(gaussian.ve(), "x0", jnp.ones(2), weighting="snr"),
     "weighting must be one of"),
])
def test_bad_loss_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_draws_stay_off_the_ends_where_the_weights_divide_by_zero():
    """Rectified flow's t = 0 (sigma = 0) and t = 1 (alpha = 0): the times are kept 1e-5
    off them, so every weighting is finite even for a draw of exactly 0 or 1."""
    path = gaussian.rectified_flow()
    for density in ("uniform", "mode"):
        t = _draw(density, n=200_000)
        assert t.min() >= 1e-5 - 1e-12 and t.max() <= 1 - 1e-5 + 1e-12
    t = jnp.asarray([1e-5, 0.5, 1 - 1e-5])
    for weighting in gaussian.PATH_WEIGHTINGS:
        for prediction in gaussian.CONTINUOUS_PREDICTIONS:
            w = gaussian.loss_weight(path, prediction, t, weighting=weighting)
            assert np.isfinite(np.asarray(w)).all(), (weighting, prediction)
    # min-SNR at SNR = 0 and infinity: min(1, gamma / SNR)
    np.testing.assert_allclose(gaussian.loss_weight(gaussian.ve(), "eps", jnp.asarray(
        [1e-8, 1e8]), weighting="min_snr"), [5e-16, 1.0], rtol=1e-6)


def test_a_shifted_density_is_not_uniform_for_the_integral_weightings():
    with pytest.raises(ValueError, match="weighting 'likelihood' is an integral over uniform"):
        gaussian.continuous_loss(jax.random.key(0), None, gaussian.vp_cosine(),
                                 jnp.ones((2, 3)), weighting="likelihood",
                                 density_options={"shift": 3.0})
    with pytest.raises(ValueError, match="mode_scale must lie in"):
        _draw("mode", mode_scale=2.0)
