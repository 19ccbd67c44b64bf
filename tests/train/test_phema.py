"""EDM2's post-hoc EMA math against independent references: the continuous profiles'
integrals (scipy quad), the paper's exponents, and a reconstruction of an EMA that was
tracked directly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from jaxdiff.train import phema


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def test_std_and_exponent_are_inverse_and_give_edm2s_values():
    stds = np.array([0.01, 0.05, 0.07, 0.10, 0.2, 0.28])
    np.testing.assert_allclose(phema.std_from_exponent(phema.exponent_from_std(stds)), stds,
                               rtol=1e-12)
    # EDM2 (Sec. 3.1): sigma_rel 0.05 and 0.10 are exponents 16.97 and 6.94
    np.testing.assert_allclose(phema.exponent_from_std([0.05, 0.10]), [16.97, 6.94], atol=0.01)
    with pytest.raises(ValueError, match="std must lie in"):
        phema.exponent_from_std(0.3)


def test_inner_products_are_the_profiles_integrals():
    def profile(t, g):
        return lambda tau: (g + 1) / t ** (g + 1) * tau**g if tau <= t else 0.0

    for (ta, ga), (tb, gb) in [((100.0, 6.94), (250.0, 16.97)), ((300.0, 2.0), (300.0, 9.0)),
                               ((80.0, 16.97), (40.0, 6.94))]:
        pa, pb = profile(ta, ga), profile(tb, gb)
        want = integrate.quad(lambda x, pa=pa, pb=pb: pa(x) * pb(x), 0, min(ta, tb),
                              limit=200, epsabs=0, epsrel=1e-12)[0]
        got = phema.profile_inner_products([ta], [ga], [tb], [gb])[0, 0]
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_the_discrete_update_follows_the_continuous_profile():
    """theta(tau) = tau: the profile average is (gamma + 1) / (gamma + 2) t."""
    for std in (0.05, 0.10):
        gamma = float(phema.exponent_from_std(std))
        ema = jnp.zeros(())
        for step in range(1, 2001):
            ema = phema.power_ema_update(ema, jnp.asarray(float(step)), step, gamma)
        np.testing.assert_allclose(float(ema), (gamma + 1) / (gamma + 2) * 2000, rtol=2e-3)


def test_the_update_rate_is_one_minus_beta_at_any_step():
    """1 - beta = 1 - (1 - 1/t)^(gamma + 1), computed in float64, at t = 2 and t = 1e6 (where
    the direct float32 power loses 1.5%)."""
    gamma = float(phema.exponent_from_std(0.05))
    for t in (2, 1_000_000):
        ema = phema.power_ema_update(jnp.zeros((), jnp.float32), jnp.ones((), jnp.float32), t,
                                     gamma)
        want = 1.0 - (1.0 - 1.0 / t) ** (gamma + 1.0)
        np.testing.assert_allclose(float(ema), want, rtol=1e-5)


def _tracked(std, steps, theta):
    gamma = float(phema.exponent_from_std(std))
    ema, out = 0.0, []
    for t in range(1, steps + 1):
        beta = (1 - 1 / t) ** (gamma + 1)
        ema = beta * ema + (1 - beta) * theta(t)
        out.append(ema)
    return np.asarray(out)


def test_a_reconstruction_from_two_profiles_matches_an_ema_tracked_directly():
    """Snapshots of sigma_rel 0.05 and 0.10 every 100 steps of a 3000-step trajectory
    reconstruct the 0.07 (and the 0.15) profile at the end within 1% of the trajectory's
    range; asking for a snapshot's own profile gives that snapshot alone."""
    steps, every = 3000, 100
    theta = lambda t: np.sin(t / 300.0) + t / 1000.0  # noqa: E731
    stds = (0.05, 0.10)
    tracks = {s: _tracked(s, steps, theta) for s in stds}
    snap_steps = np.arange(every, steps + 1, every)
    snapshot_steps = np.concatenate([snap_steps for _ in stds])
    snapshot_stds = np.concatenate([np.full(len(snap_steps), s) for s in stds])
    snapshots = [{"w": np.float64(tracks[s][t - 1])} for s, t in zip(snapshot_stds,
                                                                    snapshot_steps, strict=True)]
    for target in (0.07, 0.15):
        x = phema.posthoc_weights(snapshot_steps, snapshot_stds, steps, target)
        got = phema.combine(snapshots, x)["w"]
        want = _tracked(target, steps, theta)[-1]
        assert abs(got - want) < 0.01 * 3.0, (target, got, want)
    own = phema.posthoc_weights(snapshot_steps, snapshot_stds, steps, 0.10)
    assert abs(own[-1] - 1.0) < 1e-6 and np.abs(own[:-1]).max() < 1e-6


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="target_step"):
        phema.posthoc_weights([100, 200], [0.05, 0.05], 300, 0.07)
    with pytest.raises(ValueError, match="equal-length"):
        phema.posthoc_weights([100, 200], [0.05], 200, 0.07)
    with pytest.raises(ValueError, match="weights"):
        phema.combine([{"w": 1.0}], [0.5, 0.5])
