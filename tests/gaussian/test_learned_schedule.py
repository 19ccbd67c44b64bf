"""VDM's learned schedule: monotone for any parameters, its ends exact at init, and the bound
of the exact denoiser depends on it only through its ends (VDM eq. 15)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian
from jaxdiff.gaussian.vdm import vdm_terms
from tests.gaussian.gaussian_data import S, exact_eps


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def _random_params(seed, features=64):
    """Every raw weight drawn with either sign: monotonicity cannot rest on the init."""
    keys = jax.random.split(jax.random.key(seed), 5)
    return {"hidden_kernel": 3 * jax.random.normal(keys[0], (features,), jnp.float64),
            "hidden_bias": 3 * jax.random.normal(keys[1], (features,), jnp.float64),
            "out_kernel": 5 * jax.random.normal(keys[2], (features,), jnp.float64),
            "bias": jax.random.normal(keys[3], (), jnp.float64),
            "scale": 4 * jax.random.normal(keys[4], (), jnp.float64)}


@pytest.mark.parametrize("seed", range(5))
def test_the_log_snr_decreases_for_any_parameters_and_time_at_inverts_it(seed):
    path = gaussian.learned_path(_random_params(seed))
    t = jnp.linspace(0.0, 1.0, 2001)
    lam = np.asarray(path.log_snr(t))
    assert np.all(np.diff(lam) < 0)
    inside = t[1:-1]
    np.testing.assert_allclose(path.time_at(path.log_snr(inside)), inside, atol=1e-9)
    alpha, sigma = path.alpha_sigma(t)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-12)


def test_the_init_starts_at_the_stated_ends():
    params = gaussian.init_learned_schedule(jax.random.key(0), dtype=jnp.float64)
    path = gaussian.learned_path(params)
    np.testing.assert_allclose(path.log_snr(jnp.asarray([0.0, 1.0])), [13.3, -5.0],
                               atol=1e-12)
    with pytest.raises(ValueError, match="log_snr_min < log_snr_max"):
        gaussian.init_learned_schedule(jax.random.key(0), log_snr_max=-6.0)
    with pytest.raises(ValueError, match="widen the range"):
        gaussian.init_learned_schedule(jax.random.key(0), log_snr_max=1.0, log_snr_min=0.8)


def test_the_diffusion_term_depends_only_on_the_ends():
    """Exact denoiser of N(0, S^2): E[L_inf] = 1/2 [log(1 + S^2 e^lambda)] between the ends,
    whatever the learned interior."""
    x0 = S * jax.random.normal(jax.random.key(0), (200_000, 1), jnp.float64)
    for seed in range(2):
        path = gaussian.learned_path(_random_params(seed))
        lam0, lam1 = (float(v) for v in path.log_snr(jnp.asarray([0.0, 1.0])))
        terms = vdm_terms(jax.random.key(1), exact_eps(path), path, x0, num_bins=None)
        got = np.asarray(terms["diffusion"])
        want = 0.5 * (np.log1p(S**2 * np.exp(lam0)) - np.log1p(S**2 * np.exp(lam1)))
        assert abs(got.mean() - want) < 4 * got.std() / np.sqrt(got.size), (got.mean(), want)


def test_the_bound_trains_the_ends_through_traced_parameters():
    """Under jit with the schedule's parameters traced: the gradient of the bound moves the
    ends (bias, scale) and reaches the interior too."""
    x0 = S * jax.random.normal(jax.random.key(0), (512, 1), jnp.float64)
    params = gaussian.init_learned_schedule(jax.random.key(3), features=16, dtype=jnp.float64)

    @jax.jit
    def bound(params):
        path = gaussian.learned_path(params)
        terms = vdm_terms(jax.random.key(1), exact_eps(path), path, x0, num_bins=None)
        return (terms["prior"] + terms["reconstruction"] + terms["diffusion"]).mean()

    grads = jax.grad(bound)(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert abs(float(grads["bias"])) > 0 and abs(float(grads["scale"])) > 0
    assert float(jnp.abs(grads["out_kernel"]).max()) > 0
