"""Samplers driven by analytic optimal denoisers (Gaussian and 3-Gaussian mixture data)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff as jd
from jaxdiff.gaussian.analytic import THREE_GAUSSIANS as MIX
from jaxdiff.gaussian.analytic import GaussianMixture

COSINE = jd.gaussian.cosine_schedule(num_steps=1000)
N = 8000


def _mixture_stats(x):
    """Weights, means and per-axis stds of the samples assigned to their nearest component."""
    x = np.asarray(x, np.float64)
    comp = ((x[:, None, :] - MIX.means[None]) ** 2).sum(-1).argmin(1)
    weights = np.bincount(comp, minlength=3) / len(x)
    means = np.stack([x[comp == k].mean(0) for k in range(3)])
    stds = np.stack([x[comp == k].std(0) for k in range(3)])
    return weights, means, stds


def _assert_reproduces_mixture(x):
    weights, means, stds = _mixture_stats(x)
    assert np.abs(weights - MIX.weights).max() < 0.02, weights
    assert np.abs(means - MIX.means).max() < 0.05, means
    assert np.abs(stds - MIX.stds[:, None]).max() < 0.03, stds


@pytest.mark.parametrize("sampler,num_steps,prediction,kwargs", [
    ("ddpm", 1000, "eps", {}),
    ("ddpm", 1000, "v", {"variance": "beta_tilde"}),
    ("ddim", 50, "eps", {}),
    ("ddim", 50, "x0", {"eta": 1.0}),
    ("dpm_solver++", 20, "eps", {"spacing": "log_snr"}),
    ("dpm_solver++", 50, "v", {}),
    ("heun", 20, "x0", {"spacing": "log_snr"}),
    ("heun", 50, "eps", {}),
])
def test_sampler_reproduces_the_mixture(sampler, num_steps, prediction, kwargs):
    run = jax.jit(lambda key: jd.gaussian.sample(
        key, MIX.denoise_fn(COSINE, prediction), COSINE, (N, 2), sampler=sampler,
        num_steps=num_steps, prediction=prediction, **kwargs))
    _assert_reproduces_mixture(run(jax.random.key(0)))


def _with_variance_channels(fn, value):
    return lambda x, t, c=None: jnp.concatenate([fn(x, t, c), jnp.full_like(x, value)], -1)


@pytest.mark.parametrize("value,fixed", [(1.0, "beta"), (-1.0, "beta_tilde")])
def test_learned_variance_interpolates_between_the_fixed_ones(value, fixed):
    oracle = MIX.denoise_fn(COSINE)
    common = dict(sampler="ddpm", num_steps=30)
    learned = jd.gaussian.sample(jax.random.key(1), _with_variance_channels(oracle, value),
                                 COSINE, (64, 2), variance="learned", **common)
    reference = jd.gaussian.sample(jax.random.key(1), oracle, COSINE, (64, 2), variance=fixed,
                                   **common)
    np.testing.assert_allclose(np.asarray(learned), np.asarray(reference), atol=1e-5)


def test_ddim_with_eta_one_is_ddpm_with_posterior_variance():
    oracle = MIX.denoise_fn(COSINE)
    ddim = jd.gaussian.sample(jax.random.key(2), oracle, COSINE, (64, 2), sampler="ddim",
                              num_steps=40, eta=1.0)
    ddpm = jd.gaussian.sample(jax.random.key(2), oracle, COSINE, (64, 2), sampler="ddpm",
                              num_steps=40, variance="beta_tilde")
    np.testing.assert_allclose(np.asarray(ddim), np.asarray(ddpm), atol=1e-4)


def _class_conditional_oracle(schedule):
    """cond = k in {0, 1, 2} gives component k's oracle; cond = 3 (null) the mixture's."""
    parts = [GaussianMixture([1.0], MIX.means[k:k + 1], MIX.stds[k:k + 1]).denoise_fn(schedule)
             for k in range(3)] + [MIX.denoise_fn(schedule)]

    def fn(x, t, cond):
        outs = jnp.stack([p(x, t) for p in parts])                  # [4, B, D]
        return jnp.take_along_axis(outs, cond[None, :, None], axis=0)[0]

    return fn


def test_classifier_free_guidance_at_scale_zero_samples_the_class():
    fn = _class_conditional_oracle(COSINE)
    labels = jnp.repeat(jnp.arange(3), 1000)
    x = jd.gaussian.sample(jax.random.key(3), fn, COSINE, (3000, 2), sampler="ddim",
                           num_steps=50, cond=labels, guidance_scale=0.0,
                           null_cond=jnp.full_like(labels, 3))
    for k in range(3):
        xk = np.asarray(x[labels == k], np.float64)
        np.testing.assert_allclose(xk.mean(0), MIX.means[k], atol=0.02)
        np.testing.assert_allclose(xk.std(0), MIX.stds[k], atol=0.02)


def test_guided_denoiser_is_one_batched_call_with_the_cfg_formula():
    calls = []

    def fn(x, t, cond):
        calls.append(x.shape)
        return jnp.concatenate([x * cond[:, None], x + cond[:, None]], axis=-1)

    guided = jd.gaussian.guided_denoiser(fn, jnp.array([2.0, 3.0]), guidance_scale=1.5,
                                         null_cond=jnp.array([0.5, 0.5]), channels=2)
    x = jnp.array([[1.0, -1.0], [2.0, 0.5]])
    out = guided(x, jnp.zeros((2,), jnp.int32))
    assert calls == [(4, 2)]
    cond_out = np.asarray(x) * np.array([[2.0], [3.0]])
    uncond_out = np.asarray(x) * 0.5
    np.testing.assert_allclose(np.asarray(out[:, :2]), cond_out + 1.5 * (cond_out - uncond_out))
    np.testing.assert_allclose(np.asarray(out[:, 2:]), np.asarray(x) + np.array([[2.0], [3.0]]))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver++", "heun"])
def test_inpainting_keeps_the_known_values_and_fills_in_from_the_data(sampler):
    # Independent coordinates: the filled-in one must follow its own marginal N(0.2, 0.3^2).
    gauss = GaussianMixture([1.0], [[-0.5, 0.2]], [0.3])
    values = jnp.tile(jnp.array([[0.9, 0.0]]), (4000, 1))
    x = jd.gaussian.sample(jax.random.key(4), gauss.denoise_fn(COSINE), COSINE, (4000, 2),
                           sampler=sampler, num_steps=100, inpaint_mask=jnp.array([1.0, 0.0]),
                           inpaint_values=values)
    np.testing.assert_array_equal(np.asarray(x[:, 0]), np.asarray(values[:, 0]))
    y = np.asarray(x[:, 1], np.float64)
    assert y.mean() == pytest.approx(0.2, abs=0.03)
    assert y.std() == pytest.approx(0.3, abs=0.03)


def test_inpainting_moves_the_fill_towards_the_consistent_component():
    """Replacement inpainting is approximate (Lugmayr et al. 2022): given x = -0.6 the fill
    should be component 0's y = -0.4; it lands between that and the prior mean -0.17."""
    values = jnp.tile(jnp.array([[-0.6, 0.0]]), (4000, 1))
    x = jd.gaussian.sample(jax.random.key(4), MIX.denoise_fn(COSINE), COSINE, (4000, 2),
                           sampler="ddim", num_steps=100, inpaint_mask=jnp.array([1.0, 0.0]),
                           inpaint_values=values)
    prior_mean = float(MIX.weights @ MIX.means[:, 1])
    assert float(x[:, 1].mean()) < prior_mean - 0.05


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver++", "heun"])
def test_jit_equals_eager_and_compiles_once(sampler):
    chex.clear_trace_counter()
    oracle = MIX.denoise_fn(COSINE)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key):
        return jd.gaussian.sample(key, oracle, COSINE, (16, 2), sampler=sampler, num_steps=10)

    jitted = run(jax.random.key(5))
    run(jax.random.key(6))   # a second key must not retrace
    eager = jd.gaussian.sample(jax.random.key(5), oracle, COSINE, (16, 2), sampler=sampler,
                               num_steps=10)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sampler="euler"), "sampler"),
    (dict(prediction="score"), "prediction"),
    (dict(variance="large"), "variance"),
    (dict(shape=(4,)), "shape"),
    (dict(num_steps=1), "num_steps"),
    (dict(num_steps=11), "num_steps"),
    (dict(guidance_scale=2.0, cond=jnp.zeros((4,), jnp.int32)), "null_cond"),
    (dict(cond=jnp.zeros((3,), jnp.int32)), "cond"),
    (dict(inpaint_mask=jnp.ones((4, 2))), "inpaint_values"),
    (dict(inpaint_mask=jnp.ones((3,)), inpaint_values=jnp.ones((4, 2))), "inpaint_mask"),
    (dict(variance="learned"), "twice the channels"),
    (dict(sampler="dpm_solver++", eta=0.5), "eta is DDIM's stochasticity"),
    (dict(sampler="heun", variance="beta_tilde"), "beta_tilde"),
])
def test_bad_arguments_are_named(kwargs, match):
    s = jd.gaussian.cosine_schedule(num_steps=10)
    args = dict(shape=(4, 2))
    args.update(kwargs)
    shape = args.pop("shape")
    with pytest.raises(ValueError, match=match):
        jd.gaussian.sample(jax.random.key(0), lambda x, t, c: x, s, shape, **args)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver++", "heun"])
def test_clip_x0_is_honoured_by_every_sampler(sampler):
    """A denoiser predicting eps = 0 claims x0 = x_t / alpha_t, far outside [-1, 1] at high
    noise; with clip_x0 every sampler's output stays in [-1, 1], without it it does not."""
    schedule = jd.gaussian.cosine_schedule(num_steps=100)

    def zero_eps(x, t, cond=None):
        return jnp.zeros_like(x)

    def run(clip):
        return jax.jit(lambda k: jd.gaussian.sample(
            k, zero_eps, schedule, (64, 2), sampler=sampler, num_steps=10,
            clip_x0=clip))(jax.random.key(0))

    assert float(jnp.max(jnp.abs(run(True)))) <= 1.0 + 1e-6
    assert float(jnp.max(jnp.abs(run(False)))) > 2.0
