"""Block diffusion and SEDD in the loop: the block process's config errors, the network it
fits, a short run whose KV-cached and uncached samplers agree, its held-out bound's unit;
short SEDD runs on both graphs."""

import json

import jax
import numpy as np
import pytest

from jaxdiff import train
from tests.train.util import TINY_TEXT, tiny_config


def _config(**diffusion):
    return tiny_config(TINY_TEXT, diffusion={"process": "block", **diffusion})


@pytest.mark.parametrize("diffusion, sections, match", [
    ({"block_size": 5}, {}, "diffusion.block_size: must divide data.seq_len = 16, got 5"),
    ({"block_size": 0}, {}, "diffusion.block_size: must be an int >= 1, got 0"),
    ({}, {"train": {"sample_steps": None}}, "train.sample_steps: block diffusion unmasks"),
])
def test_bad_block_configs_are_named(diffusion, sections, match):
    config = tiny_config(TINY_TEXT, diffusion={"process": "block", **diffusion}, **sections)
    with pytest.raises(ValueError, match=match):
        train.validate(config, num_devices=1)


def test_block_size_is_rejected_for_other_processes():
    config = tiny_config(TINY_TEXT, diffusion={"block_size": 4})
    with pytest.raises(ValueError, match="diffusion.block_size: is not a setting of process "
                                         "'masked'"):
        train.validate(config, num_devices=1)


def test_a_block_run_trains_and_its_samplers_agree(tmp_path):
    config = _config(block_size=4)
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    network = run.model_config
    assert (network.block_size, network.time_conditioning, network.causal) == (4, False, False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    held_out = [row for row in rows if "eval_bpc" in row][-1]
    assert held_out["eval_bpc"] == pytest.approx(held_out["eval_loss"] / (16 * np.log(2)))
    draws = [np.asarray(train.make_sampler(run, count=3, sampler=name, num_steps=3)(
        jax.random.key(0), state.ema_params)) for name in ("cached", "uncached")]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert draws[0].shape == (3, 16) and draws[0].max() < 27
    with pytest.raises(ValueError, match="need a conditional run"):
        train.make_sampler(run, count=3, guidance_scale=2.0)


@pytest.mark.parametrize("process", ["sedd_absorbing", "sedd_uniform"])
def test_a_sedd_run_trains_and_samples(tmp_path, process):
    config = tiny_config(TINY_TEXT, diffusion={"process": process, "schedule": None})
    assert config.diffusion.schedule is None   # the graph's one schedule
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite([row["loss"] for row in rows if "loss" in row]).all()
    held_out = [row for row in rows if "eval_bpc" in row][-1]
    assert 3.0 < held_out["eval_bpc"] < 12.0     # an untrained model: near log2(27) or above
    out = np.asarray(train.make_sampler(run, count=3, num_steps=4)(jax.random.key(0),
                                                                   state.ema_params))
    assert out.shape == (3, 16) and out.max() < 27
