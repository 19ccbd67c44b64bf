"""A scheduler config, read by jaxdiff, steps as diffusers' scheduler steps: one ancestral step
against ``DDPMScheduler.step`` (same noise) for each variance type, prediction type and
clipping, and one DDIM step against ``DDIMScheduler.step``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian
from jaxdiff.pretrained.scheduler import scheduler_from_config
from tests.pretrained.reference import require

SHAPE = (2, 3, 4, 4)   # NCHW for diffusers; jaxdiff gets NHWC


def _nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


def _inputs(channels_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    out = rng.standard_normal((SHAPE[0], channels_out) + SHAPE[2:]).astype(np.float32)
    return x, out


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("clip_sample", [True, False])
def test_an_ancestral_step_is_diffusers_ddpm_step(variance_type, prediction_type, clip_sample):
    torch = require("torch")
    diffusers = require("diffusers")
    reference = diffusers.DDPMScheduler(num_train_timesteps=50, variance_type=variance_type,
                                        prediction_type=prediction_type,
                                        clip_sample=clip_sample)
    reference.set_timesteps(50)
    ours = scheduler_from_config(dict(reference.config, _class_name="DDPMScheduler"))
    learned = variance_type == "learned_range"
    x, out = _inputs(2 * SHAPE[1] if learned else SHAPE[1])
    for t in (49, 20, 1):
        # two draws give diffusers' mean m and std s: prev = m + s z (z from the generator)
        prevs, noises = [], []
        for seed in (t, t + 100):
            prevs.append(reference.step(torch.from_numpy(out), t, torch.from_numpy(x),
                                        generator=torch.Generator().manual_seed(seed)
                                        ).prev_sample.numpy())
            noises.append(torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
                          .numpy())
        apart = np.abs(noises[0] - noises[1]) > 0.5     # where the division is well posed
        std = (prevs[0] - prevs[1]) / np.where(apart, noises[0] - noises[1], 1.0)
        mean = prevs[0] - std * noises[0]
        got_mean, log_var, _, _ = gaussian.p_mean_variance(
            ours.schedule, _nhwc(out), _nhwc(x), jnp.full((SHAPE[0],), t),
            clip_x0=ours.clip_x0, prediction=ours.prediction, variance=ours.variance)
        # diffusers forms 1 - alpha_bar_prev in float32: at t = 1 (alpha_bar_0 = 0.9999) its
        # posterior coefficients and beta-tilde are ~1.5e-4 off the float64 values jaxdiff
        # rounds; a wrong variance, prediction or clipping is off by orders more
        keep = _nhwc(apart).astype(bool)
        np.testing.assert_allclose(np.asarray(got_mean)[keep], _nhwc(mean)[keep], rtol=2e-4,
                                   atol=1e-4)
        np.testing.assert_allclose(np.asarray(jnp.exp(0.5 * log_var))[keep], _nhwc(std)[keep],
                                   rtol=2e-4)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("clip_sample", [True, False])
def test_a_ddim_step_is_diffusers_ddim_step(prediction_type, clip_sample):
    """jaxdiff's clipped DDIM step recomputes eps from the clipped x0: diffusers'
    ``use_clipped_model_output=True`` (its DDIMPipeline's default is False)."""
    torch = require("torch")
    diffusers = require("diffusers")
    reference = diffusers.DDIMScheduler(num_train_timesteps=100, prediction_type=prediction_type,
                                        clip_sample=clip_sample, timestep_spacing="leading")
    reference.set_timesteps(10)                       # 90, 80, ..., 0
    ours = scheduler_from_config(dict(reference.config, _class_name="DDIMScheduler"))
    taus = jnp.arange(0, 100, 10)
    respaced = gaussian.respace(ours.schedule, taus)
    x, out = _inputs(SHAPE[1], seed=1)
    for i in (9, 4, 0):
        want = reference.step(torch.from_numpy(out), int(taus[i]), torch.from_numpy(x),
                              eta=0.0, use_clipped_model_output=True).prev_sample.numpy()
        got = gaussian.ddim_step(jax.random.key(0), lambda x_t, t: _nhwc(out), respaced, taus,
                                 jnp.asarray(i), _nhwc(x), prediction=ours.prediction,
                                 clip_x0=ours.clip_x0)
        np.testing.assert_allclose(np.asarray(got), want.transpose(0, 2, 3, 1), rtol=2e-5,
                                   atol=1e-4)
