"""ODE samplers on continuous paths: the analytic mixture, DDIM's identity, EDM's Alg. 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian
from tests.gaussian.mixture_checks import weight_and_mean_errors

MIXTURE = gaussian.THREE_GAUSSIANS


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def _sample(path, prediction="velocity", n=4000, **options):
    fn = MIXTURE.path_denoise_fn(path, prediction)
    run = jax.jit(lambda key: gaussian.ode_sample(key, fn, path, (n, 2), prediction=prediction,
                                                  dtype=jnp.float64, **options))
    return run(jax.random.key(0))


@pytest.mark.parametrize("name", sorted(gaussian.PATHS))
@pytest.mark.parametrize("solver", gaussian.SOLVERS)
def test_every_solver_reproduces_the_mixture_on_every_path_with_its_defaults(name, solver):
    """Only the solver named: its default steps (DEFAULT_STEPS) and the path's grid."""
    samples = _sample(gaussian.get_path(name), solver=solver)
    weight_error, mean_error = weight_and_mean_errors(samples)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_the_prediction_a_model_makes_does_not_change_the_samples(prediction):
    path = gaussian.vp_cosine()
    np.testing.assert_allclose(_sample(path, prediction, n=64),
                               _sample(path, "velocity", n=64), atol=1e-7)


def test_euler_on_rectified_flow_is_ddim_on_the_vp_schedule_of_the_same_log_snrs():
    """Both are the first-order solver in x / alpha against sigma / alpha: on levels of
    equal log-SNR x_rf = x_vp * t / sigma_vp, and both end at x0_hat of the last level.
    The first level's log-SNR is -30, where the priors t_0 z and z agree to 1e-13."""
    lams = np.linspace(-30.0, 7.0, 12)                  # noisy -> clean levels
    rf = gaussian.rectified_flow()
    times = np.asarray(rf.time_at(jnp.asarray(lams)))
    euler = gaussian.ode_sample(jax.random.key(1), MIXTURE.path_denoise_fn(rf, "velocity"),
                                rf, (256, 2), solver="euler", times=times, dtype=jnp.float64)
    schedule = gaussian.schedule_from_log_snrs(lams[::-1].copy(), dtype=jnp.float64)
    ddim = gaussian.sample(jax.random.key(1), MIXTURE.denoise_fn(schedule), schedule, (256, 2),
                           sampler="ddim", num_steps=len(lams))
    np.testing.assert_allclose(euler, ddim, atol=1e-9)


def _edm_algorithm_1(denoise, x, sigma_min=0.002, sigma_max=80.0, num_steps=18, rho=7.0):
    """Karras et al. 2022, Alg. 1 (deterministic Heun, eq. 5 grid, t_N = 0), float64 NumPy."""
    i = np.arange(num_steps)
    sigmas = (sigma_max ** (1 / rho) + i / (num_steps - 1)
              * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    sigmas = np.append(sigmas, 0.0)
    for k in range(num_steps):
        d = (x - denoise(x, sigmas[k])) / sigmas[k]
        x_next = x + (sigmas[k + 1] - sigmas[k]) * d
        if sigmas[k + 1] != 0:
            d_next = (x_next - denoise(x_next, sigmas[k + 1])) / sigmas[k + 1]
            x_next = x + (sigmas[k + 1] - sigmas[k]) * 0.5 * (d + d_next)
        x = x_next
    return x


def test_heun_on_the_ve_path_is_edm_algorithm_1():
    path = gaussian.ve()
    prior = 80.0 * jax.random.normal(jax.random.split(jax.random.key(2))[0], (128, 2),
                                     jnp.float64)
    denoise = lambda x, s: np.asarray(MIXTURE.x0(jnp.asarray(x), jnp.ones(len(x)),  # noqa: E731
                                                 jnp.full(len(x), s)))
    expected = _edm_algorithm_1(denoise, np.asarray(prior))
    got = gaussian.ode_sample(jax.random.key(2), MIXTURE.path_denoise_fn(path, "x0"), path,
                              (128, 2), solver="heun", num_steps=18, prediction="x0",
                              dtype=jnp.float64)
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_churn_is_stochastic_and_still_reproduces_the_mixture():
    """EDM's Alg. 2; 40 steps (at 18 the churned mean error is 0.040 against 0.021
    deterministic: with an exact denoiser churn only adds discretisation error)."""
    path = gaussian.ve()
    options = dict(solver="heun", num_steps=40)
    churned = _sample(path, "x0", s_churn=40.0, s_tmin=0.05, s_tmax=50.0, **options)
    assert np.abs(np.asarray(churned) - np.asarray(_sample(path, "x0", **options))).max() > 0.1
    weight_error, mean_error = weight_and_mean_errors(churned)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


def test_inpainting_keeps_the_known_coordinate_and_guidance_runs_both_branches():
    path = gaussian.rectified_flow()
    values = jnp.tile(jnp.asarray([[0.6, 0.0]]), (512, 1))
    mask = jnp.asarray([1.0, 0.0])
    x = _sample(path, n=512, inpaint_mask=mask, inpaint_values=values)
    np.testing.assert_allclose(x[:, 0], 0.6)
    # x = 0.6 belongs to component 1 (mean y = -0.3): the filled-in y follows it
    assert abs(float(jnp.median(x[:, 1])) + 0.3) < 0.1
    calls = []

    def conditional(x_t, t, cond):
        calls.append(cond.shape)
        return MIXTURE.path_denoise_fn(path)(x_t, t)

    gaussian.ode_sample(jax.random.key(0), conditional, path, (4, 2), solver="euler",
                        num_steps=3, cond=jnp.zeros(4, jnp.int32), guidance_scale=2.0,
                        null_cond=jnp.ones(4, jnp.int32))
    assert calls[0] == (8,)


def test_time_grids_follow_their_spacings():
    rf, ve = gaussian.rectified_flow(), gaussian.ve()
    np.testing.assert_allclose(gaussian.time_grid(rf, 4), [1.0, 0.75, 0.5, 0.25])
    np.testing.assert_allclose(gaussian.time_grid(rf, 4, shift=3.0),
                               3 * np.array([1, 0.75, 0.5, 0.25]) / (1 + 2 * np.array(
                                   [1, 0.75, 0.5, 0.25])))
    i = np.arange(18)
    edm = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(gaussian.time_grid(ve, 18, spacing="karras"), edm, rtol=1e-12)
    lam = np.asarray(rf.log_snr(jnp.asarray(gaussian.time_grid(rf, 5, spacing="log_snr"))))
    np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-9)   # even in lambda
    np.testing.assert_allclose(lam[[0, -1]], [-2 * np.log(80), -2 * np.log(0.002)])


@pytest.mark.parametrize("options, message", [
    (dict(solver="rk4"), "solver must be one of"),
    (dict(spacing="cosine"), "spacing must be one of"),
    (dict(spacing="karras", shift=3.0), "shift applies to the uniform grid"),
    (dict(s_churn=-1.0), "need s_churn >= 0"),
    (dict(num_steps=0), "num_steps must be an int >= 1"),
    (dict(times=[0.2, 0.5]), "times must be a strictly decreasing"),
    (dict(times=[0.5, 0.2], num_steps=4), r"\['num_steps'\] must be left at their defaults"),
    (dict(prediction="score"), "prediction must be one of"),
])
def test_bad_sampler_input_is_named(options, message):
    path = gaussian.rectified_flow()
    with pytest.raises(ValueError, match=message):
        gaussian.ode_sample(jax.random.key(0), MIXTURE.path_denoise_fn(path), path, (2, 2),
                            **options)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver++", "heun"])
def test_every_discrete_sampler_reproduces_the_mixture_with_its_defaults(schedule, sampler):
    """jaxdiff.gaussian.sample with only the sampler named (its default steps and spacing)
    on every schedule the library ships (experiments/sampler_matrix.py has the full
    matrix)."""
    build = {"linear": gaussian.linear_schedule, "cosine": gaussian.cosine_schedule,
             "sigmoid": gaussian.sigmoid_schedule}[schedule]
    s = build(dtype=jnp.float64)
    x = jax.jit(lambda key: gaussian.sample(key, MIXTURE.denoise_fn(s), s, (4000, 2),
                                            sampler=sampler))(jax.random.key(0))
    weight_error, mean_error = weight_and_mean_errors(x)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


def test_churn_and_eps_at_rectified_flows_pure_noise_end_are_safe():
    """At t = 1 alpha = 0: churn leaves that level alone (it is pure noise) instead of
    dividing by alpha, and an eps model, which cannot identify x0 there, is a named error."""
    path = gaussian.rectified_flow()
    x = _sample(path, n=512, solver="heun", s_churn=5.0)
    assert np.isfinite(np.asarray(x)).all()
    with pytest.raises(ValueError, match="prediction='eps' cannot be sampled on the "
                                         "'rectified_flow' path"):
        _sample(path, "eps", n=4)


def test_rectified_flow_trajectories_to_a_point_are_straight_and_vp_ones_are_not():
    """Data at a single point: the exact rectified-flow velocity is constant along each
    trajectory, so S = 0 (Liu et al. 2023); the VP path's trajectories curve (S > 0). On the
    mixture neither is straight (measured: 0.23 rectified flow, 0.21 vp_cosine; with the
    independent coupling trajectories bend where the modes separate: reflow straightens
    them)."""
    from jaxdiff.metrics import straightness

    point = gaussian.GaussianMixture([1.0], [[0.5, -0.2]], [1e-9])
    results = {}
    for name in ("rectified_flow", "vp_cosine"):
        path = gaussian.get_path(name)
        for data, label in ((point, "point"), (MIXTURE, "mixture")):
            x, states, times = gaussian.ode_sample(
                jax.random.key(0), data.path_denoise_fn(path), path, (512, 2),
                solver="euler", num_steps=20, return_trajectory=True, dtype=jnp.float64)
            assert states.shape[0] == len(times) and np.all(np.diff(times) < 0)
            if name == "rectified_flow":     # its clean end is a state: the samples
                np.testing.assert_allclose(states[-1], x)
            results[name, label] = straightness(states, times)
    assert results["rectified_flow", "point"] < 1e-12
    assert results["vp_cosine", "point"] > 0.05
    assert results["rectified_flow", "mixture"] > 0.1 and results["vp_cosine", "mixture"] > 0.1
    with pytest.raises(ValueError, match="times must be strictly decreasing"):
        straightness(np.zeros((3, 2, 2)), np.array([0.0, 0.5, 1.0]))
