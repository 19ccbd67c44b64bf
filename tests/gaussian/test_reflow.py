"""Reflow: coupled pairs and the loss on them, against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from demo import mixture_errors  # experiments/demo.py (experiments/ on the path)

from jaxdiff import gaussian

MIXTURE = gaussian.THREE_GAUSSIANS


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_pairs_start_at_their_noise_and_reach_the_data_distribution():
    path = gaussian.rectified_flow()
    velocity = MIXTURE.path_denoise_fn(path)
    noise, samples = jax.jit(lambda key: gaussian.reflow_pairs(
        key, velocity, path, (4000, 2), dtype=jnp.float64))(jax.random.key(0))
    errors = mixture_errors(np.asarray(samples), MIXTURE)
    assert errors["weight_error"] < 0.025 and errors["mean_error"] < 0.03, errors
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05
    # the ODE from each pair's noise, solved again, lands on its sample
    again = gaussian.ode_sample(jax.random.key(5), velocity, path, (4000, 2), solver="euler",
                                x_init=noise, dtype=jnp.float64)
    np.testing.assert_allclose(again, samples, atol=1e-12)


def test_the_loss_on_coupled_pairs_of_a_deterministic_map_is_zero_at_the_optimum():
    """1-D data N(0, s^2): the 1-rectified flow maps z to s z. On the pairs (s z, z),
    x_t = ((1 - t) s + t) z, so the velocity z - s z = (1 - s) x_t / ((1 - t) s + t) is a
    function of x_t: its loss is exactly 0 with the coupled noise, and > 0 with independent
    noise (where the optimum is another function)."""
    s = 0.3
    path = gaussian.rectified_flow()
    z = jax.random.normal(jax.random.key(1), (512, 1), jnp.float64)

    def reflowed(x_t, t, cond=None):
        return (1 - s) * x_t / ((1 - t) * s + t)[:, None]

    coupled = gaussian.continuous_loss(jax.random.key(2), reflowed, path, s * z, noise=z)
    independent = gaussian.continuous_loss(jax.random.key(2), reflowed, path, s * z)
    assert float(jnp.abs(coupled).max()) < 1e-20
    assert float(independent.mean()) > 0.1


def test_bad_arguments_are_named():
    vp = gaussian.vp_cosine()
    with pytest.raises(ValueError, match="pure noise"):
        gaussian.reflow_pairs(jax.random.key(0), MIXTURE.path_denoise_fn(vp), vp, (4, 2))
    rf = gaussian.rectified_flow()
    with pytest.raises(ValueError, match="spacing='uniform'"):
        gaussian.reflow_pairs(jax.random.key(0), MIXTURE.path_denoise_fn(rf), rf, (4, 2),
                              spacing="karras")
    with pytest.raises(ValueError, match="noise must have the shape"):
        gaussian.continuous_loss(jax.random.key(0), MIXTURE.path_denoise_fn(rf), rf,
                                 jnp.zeros((4, 2)), noise=jnp.zeros((4, 3)))
