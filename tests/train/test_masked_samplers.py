"""The masked process's samplers in a run: MDLM's cache on a denoiser without time
conditioning, ReMDM and LLaDA's order, and the options each sampler refuses."""

import jax
import numpy as np
import pytest

from jaxdiff import train
from tests.train.util import TINY_TEXT, tiny_config


@pytest.fixture(scope="module")
def untimed_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("untimed")
    train.train(tiny_config(TINY_TEXT, diffusion={"time_conditioning": False}), workdir)
    return train.restore_workdir(workdir)


def test_an_untimed_masked_run_samples_the_same_with_and_without_the_cache(untimed_run):
    run, state = untimed_run
    assert run.model_config.time_conditioning is False
    draws = [np.asarray(train.make_sampler(run, count=4, num_steps=40, cache=cache)(
        jax.random.key(1), state.ema_params)) for cache in (False, True)]
    np.testing.assert_array_equal(draws[0], draws[1])


@pytest.mark.parametrize("sampler, options", [
    ("remdm", {"remasking": "rescale", "eta": 0.5, "top_p": 0.9}),
    ("remdm", {"remasking": "conf"}),
    ("confidence", {"order": "confidence", "block_length": 4}),
    ("ancestral", {"block_length": 8, "temperature": 0.8}),
])
def test_every_sampler_fills_every_position(untimed_run, sampler, options):
    run, state = untimed_run
    out = np.asarray(train.make_sampler(run, count=3, sampler=sampler, num_steps=8, **options)(
        jax.random.key(0), state.ema_params))
    assert out.shape == (3, 16) and out.min() >= 0 and out.max() < 27


def test_options_a_sampler_does_not_take_are_named(untimed_run):
    run, _ = untimed_run
    with pytest.raises(ValueError, match=r"sampler 'ancestral' does not take the option\(s\) "
                                         r"\['eta'\]"):
        train.make_sampler(run, count=2, num_steps=4, eta=0.1)
    with pytest.raises(ValueError, match=r"sampler 'remdm' does not take the option\(s\) "
                                         r"\['block_length'\]"):
        train.make_sampler(run, count=2, sampler="remdm", num_steps=4, block_length=4)


def test_the_cache_is_refused_for_a_time_conditioned_denoiser(tmp_path):
    config = tiny_config(TINY_TEXT, train={"num_steps": 1, "checkpoint_every": 1,
                                           "eval_every": 1})
    run = train.build_run(config)
    with pytest.raises(ValueError, match="diffusion.time_conditioning=False"):
        train.make_sampler(run, count=2, num_steps=4, cache=True)
