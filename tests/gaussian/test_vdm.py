"""VDM's continuous-time bound against its closed form on Gaussian data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian
from jaxdiff.gaussian.vdm import vdm_terms, vdm_times
from tests.gaussian.gaussian_data import S, exact_eps

PATH_OPTIONS = dict(log_snr_min=-12.0, log_snr_max=9.0)


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_the_bound_of_the_exact_denoiser_is_its_closed_form():
    """E[prior] = alpha_1^2 S^2 / (2 sigma_1^2) (prior N(0, sigma_1^2)); E[L_inf] =
    1/2 [log(1 + S^2 e^lambda)] between the ends; E[reconstruction] = 1/2 log(2 pi
    sigma_0^2 / alpha_0^2) + 1/2. Their sum bounds -log p(x), whose mean is
    1/2 log(2 pi e S^2), from above and within 1e-3 nats here."""
    path = gaussian.vp_cosine(**PATH_OPTIONS)
    x0 = S * jax.random.normal(jax.random.key(0), (200_000, 1), jnp.float64)
    terms = vdm_terms(jax.random.key(1), exact_eps(path), path, x0, num_bins=None)
    lam0, lam1 = 9.0, -12.0
    a1, s1 = 1 / np.sqrt(1 + np.exp(-lam1)), 1 / np.sqrt(1 + np.exp(lam1))
    a0, s0 = 1 / np.sqrt(1 + np.exp(-lam0)), 1 / np.sqrt(1 + np.exp(lam0))
    expected = {"prior": a1**2 * S**2 / (2 * s1**2),
                "diffusion": 0.5 * (np.log1p(S**2 * np.exp(lam0))
                                    - np.log1p(S**2 * np.exp(lam1))),
                "reconstruction": 0.5 * np.log(2 * np.pi * s0**2 / a0**2) + 0.5}
    for name, value in expected.items():
        got = np.asarray(terms[name])
        stderr = got.std() / np.sqrt(got.size) + 1e-12
        assert abs(got.mean() - value) < 4 * stderr + 1e-9, (name, got.mean(), value)
    total = sum(expected.values())
    true_nll = 0.5 * np.log(2 * np.pi * np.e * S**2)
    assert 0 < total - true_nll < 1e-3


def test_a_unit_prior_is_vdms_kl():
    """prior_std=1 (VDM's N(0, I)): E[prior] = 1/2 (alpha_1^2 S^2 + sigma_1^2 - 1 -
    log sigma_1^2)."""
    path = gaussian.vp_cosine(log_snr_min=-3.0, log_snr_max=9.0)
    x0 = S * jax.random.normal(jax.random.key(0), (200_000, 1), jnp.float64)
    prior = np.asarray(vdm_terms(jax.random.key(1), exact_eps(path), path, x0, num_bins=None,
                                 prior_std=1.0)["prior"])
    a1, s1 = 1 / np.sqrt(1 + np.exp(3.0)), 1 / np.sqrt(1 + np.exp(-3.0))
    want = 0.5 * (a1**2 * S**2 + s1**2 - 1 - np.log(s1**2))
    assert abs(prior.mean() - want) < 4 * prior.std() / np.sqrt(prior.size)


def test_the_discretized_decoder_is_a_softmax_over_the_levels():
    path = gaussian.vp_cosine(log_snr_min=-12.0, log_snr_max=2.0)   # sigma_0 / alpha_0 = 0.37
    levels = np.linspace(-1, 1, 5)
    x0 = jnp.asarray([[levels[1], levels[4]]])
    terms = vdm_terms(jax.random.key(2), exact_eps(path), path, x0[:, :1], num_bins=5)
    alpha_0, sigma_0 = (float(c) for c in path.alpha_sigma(np.float64(0.0)))
    z0 = alpha_0 * np.asarray(x0[:, :1]) + sigma_0 * np.asarray(jax.random.normal(
        jax.random.split(jax.random.key(2), 3)[2], (1, 1), jnp.float64))
    logits = -0.5 * ((z0[..., None] - alpha_0 * levels) / sigma_0) ** 2
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert float(terms["reconstruction"][0]) > 0.01          # an uncertain decoder
    np.testing.assert_allclose(terms["reconstruction"], -log_probs[0, 0, 1], rtol=1e-9)


def test_antithetic_times_cover_the_interval_and_lower_the_variance():
    path = gaussian.vp_cosine(**PATH_OPTIONS)
    t = np.sort(np.asarray(vdm_times(jax.random.key(3), 8, path, dtype=jnp.float64)))
    np.testing.assert_allclose(np.diff(t), 1 / 8, atol=1e-12)
    x0 = S * jax.random.normal(jax.random.key(4), (64, 1), jnp.float64)
    batch_mean = jax.jit(lambda key, antithetic: vdm_terms(
        key, exact_eps(path), path, x0, num_bins=None, antithetic=antithetic)[
            "diffusion"].mean(), static_argnums=1)
    means = {anti: np.array([float(batch_mean(jax.random.key(k), anti)) for k in range(400)])
             for anti in (True, False)}
    # measured: variance 4.8 against 6.4 (the noise draws, not the times, dominate here)
    assert means[True].var() < 0.9 * means[False].var()
    assert abs(means[True].mean() - means[False].mean()) < 4 * means[False].std() / 20


def test_a_path_without_noise_at_its_clean_end_is_named():
    with pytest.raises(ValueError, match="the 'rectified_flow' path has sigma"):
        vdm_terms(jax.random.key(0), None, gaussian.rectified_flow(), jnp.ones((2, 1)))
