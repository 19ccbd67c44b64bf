"""EDM's preconditioning (Karras et al. 2022, Table 1) against its closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian

SIGMAS = np.array([0.002, 0.05, 0.5, 3.0, 80.0])


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_scalings_are_table_1():
    c_skip, c_out, c_in, c_noise = gaussian.edm_scalings(jnp.asarray(SIGMAS), 0.5)
    np.testing.assert_allclose(c_skip, 0.25 / (SIGMAS**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_out, SIGMAS * 0.5 / np.sqrt(SIGMAS**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(SIGMAS**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_noise, np.log(SIGMAS) / 4, rtol=1e-12)


def test_network_inputs_and_targets_have_unit_variance_at_every_sigma():
    """Data of variance sigma_d^2 (uniform on [-a, a], not Gaussian): Var(c_in x) = 1 and
    Var((x0 - c_skip x) / c_out) = 1, within Monte Carlo error."""
    sigma_data = 0.5
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, 400_000) * sigma_data * np.sqrt(3)
    eps = rng.standard_normal(x0.shape)
    for sigma in SIGMAS:
        c_skip, c_out, c_in, _ = (float(c) for c in gaussian.edm_scalings(sigma, sigma_data))
        x = x0 + sigma * eps
        assert abs(np.var(c_in * x) - 1) < 0.01
        assert abs(np.var((x0 - c_skip * x) / c_out) - 1) < 0.01


def test_the_edm_loss_is_the_unit_weighted_mse_of_the_raw_network():
    path = gaussian.ve()
    x0 = 0.5 * jax.random.normal(jax.random.key(0), (16, 3))
    net = lambda x_in, c_noise, cond: jnp.tanh(x_in) * c_noise[:, None]  # noqa: E731
    sigma = gaussian.draw_times(jax.random.key(1), 16, path, density="log_normal",
                                dtype=jnp.float64)
    loss = gaussian.continuous_loss(jax.random.key(2), gaussian.edm_denoiser(net), path, x0,
                                    prediction="x0", t=sigma, weighting="edm")
    noise = jax.random.normal(jax.random.split(jax.random.key(2))[1], x0.shape, x0.dtype)
    c_skip, c_out, c_in, c_noise = (c[:, None] for c in gaussian.edm_scalings(sigma))
    x = x0 + sigma[:, None] * noise
    target = (x0 - c_skip * x) / c_out
    np.testing.assert_allclose(loss, ((net(c_in * x, c_noise[:, 0], None) - target) ** 2)
                               .mean(1), rtol=1e-10)


def test_the_ideal_raw_network_gives_the_clean_data():
    x0 = jnp.asarray([[0.3, -0.2]])
    sigma = jnp.asarray([1.7])
    x = x0 + sigma[:, None] * jnp.asarray([[0.5, 1.0]])
    c_skip, c_out, _, _ = gaussian.edm_scalings(sigma)
    ideal = lambda x_in, c_noise, cond: (x0 - c_skip[:, None] * x) / c_out[:, None]  # noqa: E731
    np.testing.assert_allclose(gaussian.edm_denoiser(ideal)(x, sigma), x0, atol=1e-12)


def test_a_bad_sigma_data_is_named():
    with pytest.raises(ValueError, match="sigma_data must be > 0"):
        gaussian.edm_denoiser(lambda *a: None, sigma_data=0.0)
