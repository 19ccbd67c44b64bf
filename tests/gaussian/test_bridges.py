"""The bridges between discrete schedules and continuous paths: the ODE solvers on a
discrete schedule, the discrete samplers on a path, both against the analytic mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian
from jaxdiff.gaussian.bridges import VIEW_PREDICTION, discrete_view, schedule_path
from tests.gaussian.mixture_checks import weight_and_mean_errors

MIXTURE = gaussian.THREE_GAUSSIANS
SCHEDULES = {"linear": gaussian.linear_schedule, "cosine": gaussian.cosine_schedule,
             "sigmoid": gaussian.sigmoid_schedule}


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_path_of_a_schedule_passes_through_its_levels_and_tells_the_model_its_steps(name):
    schedule = SCHEDULES[name](dtype=jnp.float64)
    path = schedule_path(schedule)
    knots = (np.arange(1000) + 1) / 1000
    alpha, sigma = path.alpha_sigma(jnp.asarray(knots))
    np.testing.assert_allclose(alpha**2, schedule.alpha_bars, rtol=1e-12)
    np.testing.assert_allclose(sigma**2, 1 - schedule.alpha_bars, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(path.model_time(jnp.asarray(knots)), np.arange(1000), atol=1e-9)
    between = jnp.asarray(knots[:-1] + 0.3e-3)
    np.testing.assert_allclose(path.time_at(path.log_snr(between)), between, rtol=1e-9)
    # linear between the levels: 0.3 of the way
    np.testing.assert_allclose(path.log_snr(between), 0.7 * schedule.log_snrs[:-1]
                               + 0.3 * schedule.log_snrs[1:], rtol=1e-9)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("solver", gaussian.SOLVERS)
def test_every_ode_solver_reproduces_the_mixture_on_every_discrete_schedule(name, solver):
    """An eps model of the discrete schedule, sampled by ode_sample with only the solver
    named."""
    path = schedule_path(SCHEDULES[name](dtype=jnp.float64))
    fn = MIXTURE.path_denoise_fn(path, "eps")
    x = jax.jit(lambda key: gaussian.ode_sample(key, fn, path, (4000, 2), solver=solver,
                                                prediction="eps", dtype=jnp.float64))(
        jax.random.key(0))
    weight_error, mean_error = weight_and_mean_errors(x)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_the_default_grid_tolerates_a_learned_models_error(solver):
    """The exact eps plus a smooth error of 0.05 (as a trained model has): on the cosine
    schedule the default log-SNR grid still reproduces the mixture (measured 0.015 / 0.024
    Euler, 0.013 / 0.024 midpoint); on the uniform grid Euler's first step from t = 1
    (alpha ~ 5e-5) amplifies the error and misses it (0.13 / 0.24)."""
    path = schedule_path(gaussian.cosine_schedule(dtype=jnp.float64))
    exact = MIXTURE.path_denoise_fn(path, "eps")
    fn = lambda x, t, cond=None: exact(x, t) + 0.05 * jnp.sin(3.0 * x[:, ::-1])  # noqa: E731

    def errors(**options):
        return weight_and_mean_errors(jax.jit(lambda key: gaussian.ode_sample(
            key, fn, path, (4000, 2), solver=solver, prediction="eps", dtype=jnp.float64,
            **options))(jax.random.key(0)))

    assert path.sampling_spacing == "log_snr"
    weight_error, mean_error = errors()
    assert weight_error < 0.03 and mean_error < 0.04, (weight_error, mean_error)
    if solver == "euler":
        assert max(errors(spacing="uniform")) > 0.1


def test_the_discrete_models_own_steps_reach_it_through_the_path():
    """A network of integer steps, wrapped with model_time, sees exactly its step at each
    level: the wrapped eps equals the discrete oracle's there."""
    schedule = gaussian.cosine_schedule(dtype=jnp.float64)
    path = schedule_path(schedule)
    discrete = MIXTURE.denoise_fn(schedule)
    steps = jnp.asarray([0, 17, 500, 999])
    as_path = gaussian.with_model_time(
        lambda x, step, cond=None: discrete(x, jnp.round(step).astype(jnp.int32)), path)
    x = jax.random.normal(jax.random.key(2), (4, 2), jnp.float64)
    np.testing.assert_allclose(as_path(x, (steps + 1) / 1000.0),
                               MIXTURE.path_denoise_fn(path, "eps")(x, (steps + 1) / 1000.0),
                               rtol=1e-9)


@pytest.mark.parametrize("name", ["rectified_flow", "ve", "vp_cosine", "vp_linear"])
@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver++", "heun"])
def test_every_discrete_sampler_reproduces_the_mixture_on_every_path(name, sampler):
    """A velocity (flow) or x0 (EDM) model, sampled by the discrete samplers with their
    defaults through its discrete view."""
    path = gaussian.get_path(name)
    prediction = "x0" if name == "ve" else "velocity"
    schedule, fn = discrete_view(MIXTURE.path_denoise_fn(path, prediction), path,
                                 prediction=prediction, dtype=jnp.float64)
    x = jax.jit(lambda key: gaussian.sample(key, fn, schedule, (4000, 2), sampler=sampler,
                                            prediction=VIEW_PREDICTION))(jax.random.key(0))
    weight_error, mean_error = weight_and_mean_errors(x)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


def test_the_view_of_the_exact_denoiser_is_the_same_on_every_path():
    """The views' levels are the same log-SNRs (EDM's clamped range) and the optimal
    denoiser depends on the level only through the log-SNR in VP units: the samples agree
    across paths."""
    samples = []
    for name, prediction in (("rectified_flow", "velocity"), ("ve", "x0"), ("vp_cosine", "eps")):
        path = gaussian.get_path(name)
        schedule, fn = discrete_view(MIXTURE.path_denoise_fn(path, prediction), path,
                                     prediction=prediction, num_steps=100, dtype=jnp.float64)
        samples.append(gaussian.sample(jax.random.key(4), fn, schedule, (64, 2),
                                       sampler="dpm_solver++", num_steps=20,
                                       prediction=VIEW_PREDICTION))
    np.testing.assert_allclose(samples[0], samples[1], atol=1e-8)
    np.testing.assert_allclose(samples[0], samples[2], atol=1e-8)


def test_ancestral_ddpm_on_a_flow_model_reproduces_the_mixture():
    path = gaussian.rectified_flow()
    schedule, fn = discrete_view(MIXTURE.path_denoise_fn(path), path, prediction="velocity",
                                 dtype=jnp.float64)
    x = jax.jit(lambda key: gaussian.sample(key, fn, schedule, (4000, 2), sampler="ddpm",
                                            prediction=VIEW_PREDICTION))(jax.random.key(3))
    weight_error, mean_error = weight_and_mean_errors(x)
    assert weight_error < 0.025 and mean_error < 0.03, (weight_error, mean_error)


def test_ddim_through_the_view_of_rectified_flow_is_euler_on_the_same_levels():
    """The identity of test_ode, now through discrete_view: DDIM on the VP equivalent of
    rectified flow takes the Euler steps of the flow ODE at the view's levels."""
    path = gaussian.rectified_flow()
    velocity = MIXTURE.path_denoise_fn(path)
    schedule, fn = discrete_view(velocity, path, prediction="velocity", num_steps=12,
                                 dtype=jnp.float64)
    ddim = gaussian.sample(jax.random.key(1), fn, schedule, (256, 2), sampler="ddim",
                           num_steps=12, prediction=VIEW_PREDICTION)
    times = gaussian.time_grid(path, 12, spacing="log_snr")
    # the view starts from N(0, I) in VP units: x_t = sqrt(alpha^2 + sigma^2) z
    z = jax.random.normal(jax.random.split(jax.random.key(1))[0], (256, 2), jnp.float64)
    euler = gaussian.ode_sample(jax.random.key(1), velocity, path, (256, 2), solver="euler",
                                times=times, x_init=np.hypot(1 - times[0], times[0]) * z,
                                dtype=jnp.float64)
    np.testing.assert_allclose(euler, ddim, atol=1e-9)


def test_bad_arguments_are_named():
    path = gaussian.rectified_flow()
    with pytest.raises(ValueError, match="prediction"):
        discrete_view(MIXTURE.path_denoise_fn(path), path, prediction="score")
    with pytest.raises(ValueError, match="num_steps"):
        discrete_view(MIXTURE.path_denoise_fn(path), path, prediction="velocity", num_steps=1)
