"""The public sampler steps, one step at a time against float64 NumPy formulas, and float64
sampling end to end.

The data is one Gaussian N(m, s^2 I) with f32-exact m and s, whose optimal denoiser is linear:
x0_hat = m + a s^2 (x - a m) / (a^2 s^2 + sigma^2); so the float64 path can be held to float64
precision. The linear schedule keeps the float32 path well conditioned (the cosine one's last
level, alpha ~ 5e-4 at T = 100, amplifies float32 rounding to ~1e-2 over a Heun run).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff as jd
from jaxdiff.gaussian import DPMSolverState, ddim_step, ddpm_step, dpm_solver_step, heun_step
from jaxdiff.gaussian.analytic import THREE_GAUSSIANS as MIX
from jaxdiff.gaussian.analytic import GaussianMixture

M, S = np.array([0.25, -0.5]), 0.5
GAUSS = GaussianMixture([1.0], [M], [S])
T, STEPS = 100, 10
TOL = {jnp.float32: 2e-5, jnp.float64: 1e-11}


def _setup(dtype, prediction="eps"):
    """(respaced schedule, taus, model) in ``dtype``."""
    schedule = jd.gaussian.linear_schedule(num_steps=T, dtype=dtype)
    taus = jd.gaussian.sampling_timesteps(schedule, STEPS)
    fn = GAUSS.denoise_fn(schedule, prediction)
    return jd.gaussian.respace(schedule, taus), jnp.asarray(taus), lambda x, t: fn(x, t)


def _level(lam, tau):
    """(alpha, sigma) at original step ``tau``; the data (1, 0) for ``tau = None``."""
    if tau is None:
        return 1.0, 0.0
    return np.sqrt(1 / (1 + np.exp(-lam[tau]))), np.sqrt(1 / (1 + np.exp(lam[tau])))


def _x0_hat(lam, x, tau):
    a, s = _level(lam, tau)
    return M + a * S**2 * (x - a * M) / (a**2 * S**2 + s**2)


def _x_at(lam, tau, seed=0, n=64):
    """A float64 batch at the level of original step ``tau``."""
    rng = np.random.default_rng(seed)
    a, s = _level(lam, tau)
    return a * (M + S * rng.standard_normal((n, 2))) + s * rng.standard_normal((n, 2))


def _lam64():
    with jax.enable_x64(True):
        return np.asarray(jd.gaussian.linear_schedule(num_steps=T, dtype=jnp.float64).log_snrs)


LAM = _lam64()
TAUS = jd.gaussian.sampling_timesteps(jd.gaussian.linear_schedule(num_steps=T), STEPS)


def _normal(key, shape, dtype):
    """The step's draw :math:`z`, in ``dtype``, as float64."""
    with jax.enable_x64(dtype == jnp.float64):
        return np.asarray(jax.random.normal(key, shape, dtype), np.float64)


def _prev(i):
    return None if i == 0 else TAUS[i - 1]


def _run(dtype, fn):
    """``fn(rs, taus, model)`` under the precision of ``dtype``; its output as float64."""
    with jax.enable_x64(dtype == jnp.float64):
        rs, taus, model = _setup(dtype)
        out = fn(rs, taus, model, dtype)
        leaves = jax.tree.leaves(out)
        assert all(leaf.dtype == dtype for leaf in leaves)
        return jax.tree.map(lambda v: np.asarray(v, np.float64), out)


DTYPES = [jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i,eta", [(5, 0.0), (5, 1.0), (0, 0.0)])
def test_ddim_step_is_song_et_al_eq_12(dtype, i, eta):
    x = _x_at(LAM, TAUS[i])
    key = jax.random.key(1)
    out = _run(dtype, lambda rs, taus, model, dt: ddim_step(
        key, model, rs, taus, i, jnp.asarray(x, dt), eta=eta))
    x0 = _x0_hat(LAM, x, TAUS[i])
    a_t, s_t = _level(LAM, TAUS[i])
    a_s, s_s = _level(LAM, _prev(i))
    eps = (x - a_t * x0) / s_t
    # the jump's posterior variance (1 - ab_s)/(1 - ab_t) (1 - ab_t/ab_s), from the levels
    var = s_s**2 / s_t**2 * (1 - a_t**2 / a_s**2)
    z = _normal(key, x.shape, dtype)
    expected = a_s * x0 + np.sqrt(s_s**2 - eta**2 * var) * eps + eta * np.sqrt(var) * z
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i,variance", [(4, "beta"), (4, "beta_tilde"), (0, "beta")])
def test_ddpm_step_is_the_posterior_mean_plus_noise(dtype, i, variance):
    x = _x_at(LAM, TAUS[i], seed=1)
    key = jax.random.key(2)
    out = _run(dtype, lambda rs, taus, model, dt: ddpm_step(
        key, model, rs, taus, i, jnp.asarray(x, dt), variance=variance))
    x0 = _x0_hat(LAM, x, TAUS[i])
    ab_t = _level(LAM, TAUS[i])[0] ** 2
    ab_s = _level(LAM, _prev(i))[0] ** 2
    beta = 1 - ab_t / ab_s
    mean = (np.sqrt(ab_s) * beta / (1 - ab_t) * x0
            + np.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t) * x)      # Ho et al. eq. 7
    var = beta if variance == "beta" else beta * (1 - ab_s) / (1 - ab_t)
    z = _normal(key, x.shape, dtype)
    expected = mean + (i > 0) * np.sqrt(var) * z
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[dtype])
    if i == 0:
        np.testing.assert_allclose(out, x0, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", [STEPS - 1, 5, 0])
def test_dpm_solver_step_is_lu_et_al_alg_2(dtype, i):
    x = _x_at(LAM, TAUS[i], seed=2)
    x0_prev = M + S * np.random.default_rng(3).standard_normal(x.shape)  # any previous x0_hat
    h_prev = 0.3

    def step(rs, taus, model, dt):
        state = DPMSolverState(jnp.asarray(x, dt), jnp.asarray(x0_prev, dt),
                               jnp.asarray(h_prev, dt))
        return dpm_solver_step(jax.random.key(0), model, rs, taus, i, state)

    out = _run(dtype, step)
    x0 = _x0_hat(LAM, x, TAUS[i])
    a_t, s_t = _level(LAM, TAUS[i])
    a_s, s_s = _level(LAM, TAUS[max(i - 1, 0)])
    h = np.log(a_s / s_s) - np.log(a_t / s_t)
    if i == 0:
        expected = x0
    else:
        r = h_prev / h
        d = x0 if i == STEPS - 1 else (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        expected = s_s / s_t * x - a_s * (np.exp(-h) - 1) * d
    # x0_hat = (x - sigma_t eps_hat) / alpha_t: the model's rounding grows as 1 / alpha_t
    # (alpha_t ~ 7e-3 on the first step).
    tol = TOL[dtype] / a_t
    np.testing.assert_allclose(out.x, expected, rtol=0, atol=tol)
    np.testing.assert_allclose(out.x0_prev, x0, rtol=0, atol=tol)
    np.testing.assert_allclose(out.h_prev, h, rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", [5, 0])
def test_heun_step_is_karras_et_al_alg_1(dtype, i):
    x = _x_at(LAM, TAUS[i], seed=4)
    out = _run(dtype, lambda rs, taus, model, dt: heun_step(
        jax.random.key(0), model, rs, taus, i, jnp.asarray(x, dt)))
    a_t, s_t = _level(LAM, TAUS[i])
    x0 = _x0_hat(LAM, x, TAUS[i])
    if i == 0:
        expected = x0
    else:
        a_s, s_s = _level(LAM, TAUS[i - 1])
        se_t, se_s = s_t / a_t, s_s / a_s
        y = x / a_t
        slope = (y - x0) / se_t
        y_euler = y + (se_s - se_t) * slope
        slope_next = (y_euler - _x0_hat(LAM, a_s * y_euler, TAUS[i - 1])) / se_s
        expected = a_s * (y + (se_s - se_t) * 0.5 * (slope + slope_next))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_steps_agree_across_predictions(prediction):
    """The same optimal denoiser in x0 or v form gives the eps form's step."""
    x = jnp.asarray(_x_at(LAM, TAUS[6], seed=5), jnp.float32)
    rs, taus, eps_model = _setup(jnp.float32)
    _, _, model = _setup(jnp.float32, prediction)
    key = jax.random.key(3)
    for step in [ddpm_step, ddim_step, heun_step]:
        np.testing.assert_allclose(step(key, model, rs, taus, 6, x, prediction=prediction),
                                   step(key, eps_model, rs, taus, 6, x), atol=2e-5)


def test_steps_name_bad_options():
    rs, taus, model = _setup(jnp.float32)
    x = jnp.zeros((4, 2))
    for step in [ddpm_step, ddim_step, heun_step]:
        with pytest.raises(ValueError, match="prediction"):
            step(jax.random.key(0), model, rs, taus, 1, x, prediction="score")
        with pytest.raises(ValueError, match="variance"):
            step(jax.random.key(0), model, rs, taus, 1, x, variance="large")
    state = DPMSolverState(x, x, jnp.ones(()))
    with pytest.raises(ValueError, match="variance"):
        dpm_solver_step(jax.random.key(0), model, rs, taus, 1, state, variance="large")


def _replay_float32(sampler, key, shape, num_steps, draw_dtype):
    """``sample``'s loop on the public steps in float32, from draws made in ``draw_dtype``
    (key_init for x_T, fold_in(key_loop, i) for step i, as ``sample`` documents); DDPM's step
    is written out with :func:`p_mean_variance` so that its noise is the same draw too."""
    schedule = jd.gaussian.linear_schedule(num_steps=T)
    taus = jd.gaussian.sampling_timesteps(schedule, num_steps)
    rs, taus = jd.gaussian.respace(schedule, taus), jnp.asarray(taus)
    fn = MIX.denoise_fn(schedule)
    key_init, key_loop = jax.random.split(key)
    x = jax.random.normal(key_init, shape, draw_dtype).astype(jnp.float32)
    state = DPMSolverState(x, jnp.zeros_like(x), jnp.ones(()))
    t_of = lambda i: jnp.full((shape[0],), taus[i], jnp.int32)  # noqa: E731
    for i in range(num_steps - 1, -1, -1):
        key_i = jax.random.fold_in(key_loop, i)
        if sampler == "ddpm":
            mean, log_var, _, _ = jd.gaussian.p_mean_variance(
                rs, fn(x, t_of(i)), x, jnp.full((shape[0],), i), prediction="eps",
                variance="beta")
            noise = jax.random.normal(key_i, shape, draw_dtype).astype(jnp.float32)
            x = mean + (i > 0) * jnp.exp(0.5 * log_var) * noise
        elif sampler == "dpm_solver++":
            state = dpm_solver_step(key_i, lambda x, t: fn(x, t), rs, taus, i, state)
            x = state.x
        else:
            step = {"ddim": ddim_step, "heun": heun_step}[sampler]
            x = step(key_i, lambda x, t: fn(x, t), rs, taus, i, x)
    return np.asarray(x, np.float64)


@pytest.mark.parametrize("sampler", jd.gaussian.SAMPLERS)
def test_float64_sampling_agrees_with_float32(sampler):
    key, shape, num_steps = jax.random.key(7), (128, 2), 20
    with jax.enable_x64(True):
        schedule = jd.gaussian.linear_schedule(num_steps=T, dtype=jnp.float64)
        x64 = jax.jit(lambda k: jd.gaussian.sample(k, MIX.denoise_fn(schedule), schedule, shape,
                                                   sampler=sampler, num_steps=num_steps,
                                                   spacing="uniform"))(key)
        assert x64.dtype == jnp.float64
        x32 = _replay_float32(sampler, key, shape, num_steps, jnp.float64)
    assert np.abs(np.asarray(x64) - x32).max() < 1e-5
    # and float32 ``sample`` is that same loop on its own float32 draws
    schedule = jd.gaussian.linear_schedule(num_steps=T)
    x = jd.gaussian.sample(key, MIX.denoise_fn(schedule), schedule, shape, sampler=sampler,
                           num_steps=num_steps, spacing="uniform")
    np.testing.assert_allclose(np.asarray(x, np.float64),
                               _replay_float32(sampler, key, shape, num_steps, jnp.float32),
                               rtol=0, atol=1e-5)
