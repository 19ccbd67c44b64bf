"""Continuous-time paths against independent float64 NumPy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def _np_cosine(t, lam_min=-15.0, lam_max=15.0):
    # alpha = cos(pi u / 2), u affine in t with lambda(0) = lam_max, lambda(1) = lam_min
    u0 = 2 / np.pi * np.arctan(np.exp(-lam_max / 2))
    u1 = 2 / np.pi * np.arctan(np.exp(-lam_min / 2))
    u = u0 + (u1 - u0) * t
    return np.cos(np.pi * u / 2), np.sin(np.pi * u / 2)


def _np_linear(t, b0=0.1, b1=20.0):
    log_mean_coeff = -0.25 * t**2 * (b1 - b0) - 0.5 * t * b0   # Song et al. 2021, App. B
    return np.exp(log_mean_coeff), np.sqrt(1 - np.exp(2 * log_mean_coeff))


def _np_sigmoid(t, start=-3.0, end=3.0, tau=1.0, lam_min=-15.0, lam_max=15.0):
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    def alpha2(u):
        return (sig(end / tau) - sig((u * (end - start) + start) / tau)) / (
            sig(end / tau) - sig(start / tau))
    def u_at(lam):   # bisection: lambda(u) = log(alpha2 / (1 - alpha2)) decreases in u
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            a2 = alpha2(mid)
            lo, hi = (mid, hi) if np.log(a2 / (1 - a2)) > lam else (lo, mid)
        return (lo + hi) / 2
    u0, u1 = u_at(lam_max), u_at(lam_min)
    a2 = alpha2(u0 + (u1 - u0) * t)
    return np.sqrt(a2), np.sqrt(1 - a2)


def _np_log_linear(t, lam_min=-5.0, lam_max=13.3):
    lam = lam_max + (lam_min - lam_max) * t
    return np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


REFERENCES = {
    "rectified_flow": lambda t: (1 - t, t),
    "vp_cosine": _np_cosine,
    "vp_linear": _np_linear,
    "vp_sigmoid": _np_sigmoid,
    "vp_log_linear": _np_log_linear,
    "ve": lambda t: (np.ones_like(t), t),
}


def _interior(path, n=9):
    return np.linspace(path.t_min, path.t_max, n + 2)[1:-1]


@pytest.mark.parametrize("name", sorted(gaussian.PATHS))
def test_alpha_sigma_log_snr_and_inverse_equal_the_reference(name):
    path = gaussian.get_path(name)
    t = _interior(path)
    alpha, sigma = path.alpha_sigma(jnp.asarray(t))
    ref_alpha, ref_sigma = REFERENCES[name](t)
    np.testing.assert_allclose(alpha, ref_alpha, rtol=1e-9)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-9)
    lam = path.log_snr(jnp.asarray(t))
    np.testing.assert_allclose(lam, 2 * (np.log(ref_alpha) - np.log(ref_sigma)), atol=1e-8)
    np.testing.assert_allclose(path.time_at(lam), t, atol=1e-9 * max(1.0, path.t_max))
    assert np.all(np.diff(np.asarray(lam)) < 0)


@pytest.mark.parametrize("name", sorted(gaussian.PATHS))
def test_time_derivatives_equal_central_differences(name):
    path = gaussian.get_path(name)
    t = _interior(path)
    h = 1e-6 * max(1.0, path.t_max)
    _, _, d_alpha, d_sigma = gaussian.coefficients(path, jnp.asarray(t))
    (a1, s1), (a0, s0) = REFERENCES[name](t + h), REFERENCES[name](t - h)
    np.testing.assert_allclose(d_alpha, (a1 - a0) / (2 * h), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d_sigma, (s1 - s0) / (2 * h), rtol=1e-5, atol=1e-7)


def test_truncated_vp_paths_reach_their_log_snr_ends_and_preserve_variance():
    for path in (gaussian.vp_cosine(), gaussian.vp_sigmoid(),
                 gaussian.vp_cosine(log_snr_min=-10.0, log_snr_max=8.0)):
        lam = path.log_snr(jnp.asarray([0.0, 1.0]))
        expected = (8.0, -10.0) if float(lam[0]) < 10 else (15.0, -15.0)
        np.testing.assert_allclose(lam, expected, atol=1e-7)
        alpha, sigma = path.alpha_sigma(jnp.asarray(_interior(path)))
        np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-12)
    assert gaussian.ve(sigma_max=10.0).prior_std == 10.0
    assert gaussian.rectified_flow().prior_std == 1.0


@pytest.mark.parametrize("name", sorted(gaussian.PATHS))
@pytest.mark.parametrize("prediction", gaussian.CONTINUOUS_PREDICTIONS)
def test_every_prediction_converts_back_to_x0_and_eps(name, prediction):
    path = gaussian.get_path(name)
    rng = np.random.default_rng(0)
    t = jnp.asarray(_interior(path, 6))
    x0, eps = (jnp.asarray(rng.standard_normal((6, 5))) for _ in range(2))
    alpha, sigma = path.alpha_sigma(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * eps
    out = gaussian.output_target(path, prediction, x0, eps, t)
    got_x0, got_eps = gaussian.x0_eps_from_output(path, prediction, out, x_t, t)
    np.testing.assert_allclose(got_x0, x0, atol=1e-8)
    np.testing.assert_allclose(got_eps, eps, atol=1e-8)
    # the error scale: how far eps_hat moves per unit of output error, squared
    delta = jnp.asarray(rng.standard_normal((6, 5)))
    _, moved = gaussian.x0_eps_from_output(path, prediction, out + 1e-3 * delta, x_t, t)
    ratio = ((moved - eps) ** 2).sum(1) / ((1e-3 * delta) ** 2).sum(1)
    np.testing.assert_allclose(ratio, gaussian.eps_error_scale(path, prediction, t),
                               rtol=1e-6)


def test_rectified_flow_velocity_is_eps_minus_x0():
    path = gaussian.rectified_flow()
    x0, eps, t = jnp.ones((2, 3)), 2 * jnp.ones((2, 3)), jnp.asarray([0.3, 0.9])
    np.testing.assert_allclose(gaussian.output_target(path, "velocity", x0, eps, t), eps - x0)


def test_with_model_time_tells_the_network_its_time_units():
    seen = []
    fn = gaussian.with_model_time(lambda x, time, cond: seen.append(time) or x,
                                  gaussian.ve())
    fn(jnp.zeros((2, 1)), jnp.asarray([1.0, np.e**4]))
    np.testing.assert_allclose(seen[0], [0.0, 1.0])      # EDM's c_noise = ln(sigma) / 4
    gaussian.with_model_time(lambda x, time, cond: seen.append(time),
                             gaussian.rectified_flow())(None, jnp.asarray([0.25]))
    np.testing.assert_allclose(seen[1], [250.0])


@pytest.mark.parametrize("call, message", [
    (lambda: gaussian.get_path("vp_cosinus"), "path must be one of"),
    (lambda: gaussian.ve(sigma_min=0.0), "need 0 < sigma_min < sigma_max"),
    (lambda: gaussian.vp_cosine(log_snr_min=5.0, log_snr_max=5.0), "log_snr_min < log_snr"),
    (lambda: gaussian.vp_linear(t_min=0.0), "t_min must lie in"),
    (lambda: gaussian.vp_sigmoid(tau=0.0), "tau > 0"),
    (lambda: gaussian.output_target(gaussian.rectified_flow(), "score", None, None, None),
     "prediction must be one of"),
])
def test_bad_path_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
