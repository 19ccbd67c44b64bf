"""A pretrained diffusers pipeline as a run: ``model.preset = "diffusers:DIR"`` with the
``diffusers`` schedule starts from its weights and trains (fine-tuning), and
``evaluate.py --pretrained DIR --data NAME`` writes the image report."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdiff import evaluation, pretrained, train
from tests.pretrained.reference import require, saved_model

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS_UNET = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                   layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                   up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                   attention_head_dim=8)


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    """A DDPMPipeline of a random-weight UNet for the 8x8 digits, T = 100, v prediction,
    diffusers' default fixed_small variance, x0 not clipped."""
    diffusers = require("diffusers")
    root = tmp_path_factory.mktemp("pipeline")
    saved_model("UNet2DModel", root / "unet_only", **DIGITS_UNET)
    unet = diffusers.UNet2DModel.from_pretrained(root / "unet_only")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction",
                                        beta_schedule="squaredcos_cap_v2", clip_sample=False)
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(
        root / "pipeline", safe_serialization=True)
    return root / "pipeline"


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_pretrained_pipeline_is_a_run_on_its_weights_and_scheduler(pipeline_folder):
    restored = evaluation.pretrained_run(pipeline_folder, data_name="digits")
    run = restored.run
    config, params = pretrained.load_model(pipeline_folder)
    assert run.model_config == config and restored.step == 0
    _leaves_equal(restored.ema_params, params)
    scheduler = pretrained.load_scheduler(pipeline_folder)
    np.testing.assert_array_equal(np.asarray(run.process.alpha_bars),
                                  np.asarray(scheduler.schedule.alpha_bars))
    assert run.config.diffusion.prediction == "v" and run.config.diffusion.num_steps == 100
    assert not run.task.evaluation.clip_x0(run)   # the scheduler's clip_sample=False


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_run_samples_as_the_pipeline_does(pipeline_folder, sampler):
    """Both paths take the scheduler's variance (fixed_small: beta_tilde) and clipping: the
    same samples for the same key."""
    restored = evaluation.pretrained_run(pipeline_folder, data_name="digits")
    key = jax.random.key(4)
    from_run = train.make_sampler(restored.run, sampler=sampler, num_steps=5, count=3)(
        key, restored.ema_params)
    from_pipeline = pretrained.load_pipeline(pipeline_folder).sampler(
        count=3, sampler=sampler, num_steps=5)(key)
    np.testing.assert_array_equal(np.asarray(from_run), np.asarray(from_pipeline))
    if sampler == "ddpm":   # and they differ from beta-variance samples
        beta = train.make_sampler(restored.run, sampler=sampler, num_steps=5, count=3,
                                  variance="beta")(key, restored.ema_params)
        assert np.abs(np.asarray(beta) - np.asarray(from_run)).max() > 1e-3


def test_a_pretrained_network_fine_tunes_through_the_loop(pipeline_folder, tmp_path):
    config = evaluation.pretrained_run(pipeline_folder, data_name="digits").run.config
    values = train.recorded_config(config)
    del values["version"]
    values["train"].update(num_steps=2, checkpoint_every=2, eval_every=2, log_every=1,
                           batch_size=8, sample_count=4, sample_steps=2, eval_batches=1)
    values["model"]["preset"] = "diffusers:" + os.path.relpath(pipeline_folder)
    state = train.train(train.from_dict(values), tmp_path, progress=False)
    assert int(state.step) == 2   # and the run is recorded with the folder's absolute path
    assert train.load_config(tmp_path).model.preset == f"diffusers:{pipeline_folder.resolve()}"
    _, params = pretrained.load_model(pipeline_folder)
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max()
             for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params), strict=True)]
    assert 0 < max(moved) < 0.1   # two small steps from the pretrained weights


@pytest.mark.parametrize("change, match", [
    ({"model": {"preset": "unet_tiny"}},
     r"diffusion.schedule: 'diffusers' is the scheduler of a pretrained pipeline"),
    ({"diffusion": {"prediction": "eps"}},
     r"diffusion.prediction: the scheduler of 'diffusers:.*' has 'v', this run 'eps'"),
    ({"diffusion": {"num_steps": 1000}}, r"diffusion.num_steps: the scheduler of"),
    ({"data": {"image_size": 16}}, r"data.image_size: the pretrained 'diffusers:.*' has "
                                   r"image_size=8"),
    ({"model": {"overrides": {"base_channels": 16, "num_groups": 4}}},
     r"model.overrides: change the parameters of the pretrained"),
    ({"model": {"preset": "diffusers:/nonexistent"}}, r"model.preset: pretrained folder"),
])
def test_a_pretrained_run_that_does_not_fit_is_named(pipeline_folder, change, match):
    config = evaluation.pretrained_run(pipeline_folder, data_name="digits").run.config
    values = train.recorded_config(config)
    del values["version"]
    for section, fields in change.items():
        values[section].update(fields)
    with pytest.raises(ValueError, match=match):
        run = train.build_run(train.from_dict(values))
        train.initial_state(run)


def test_evaluate_py_pretrained_writes_the_report(pipeline_folder):
    result = subprocess.run(
        [sys.executable, "experiments/evaluate.py", "--pretrained", str(pipeline_folder),
         "--data", "digits", "--quick", "--num_samples", "20", "--steps", "2",
         "--batch_size", "20", "--nll_steps", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((pipeline_folder / "eval" / "metrics.json").read_text())
    assert report["step"] == 0 and report["dataset"] == "digits"
    assert np.isfinite(report["bits_per_dim"]) and np.isfinite(report["classifier_fid"])
    usage = subprocess.run(
        [sys.executable, "experiments/evaluate.py", "--pretrained", str(pipeline_folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert usage.returncode != 0 and "--data goes with --pretrained" in usage.stderr
