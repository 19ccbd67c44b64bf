"""A diffusers DDPM pipeline sampled with jaxdiff: its scheduler's betas equal diffusers', its
settings map onto the samplers', and ``sample.py --pretrained`` runs end to end."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdiff import evaluation, pretrained
from jaxdiff.pretrained import scheduler as sched
from tests.pretrained.reference import require, saved_model

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_UNET = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                 layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                 attention_head_dim=8)
# google/ddpm-cifar10-32's scheduler_config.json
DDPM_CIFAR10_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_end": 0.02,
                          "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": True,
                          "num_train_timesteps": 1000, "trained_betas": None,
                          "variance_type": "fixed_large"}


@pytest.mark.parametrize("kwargs", [
    {}, {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 500},
    {"trained_betas": list(np.linspace(1e-4, 0.05, 100)), "num_train_timesteps": 100}])
def test_the_schedule_is_diffusers_betas(kwargs, tmp_path):
    diffusers = require("diffusers")
    reference = diffusers.DDPMScheduler(**kwargs)
    reference.save_config(tmp_path)
    got = sched.scheduler_from_config(json.loads((tmp_path / "scheduler_config.json")
                                                 .read_text())).schedule
    np.testing.assert_allclose(np.asarray(got.alpha_bars),
                               reference.alphas_cumprod.numpy(), rtol=2e-6, atol=1e-12)


def test_prediction_variance_and_clipping_map_onto_the_samplers_options():
    s = sched.scheduler_from_config(DDPM_CIFAR10_SCHEDULER)
    assert (s.prediction, s.variance, s.clip_x0) == ("eps", "beta", True)
    s = sched.scheduler_from_config({"_class_name": "DDIMScheduler", "clip_sample": False,
                                     "prediction_type": "v_prediction",
                                     "timestep_spacing": "leading", "steps_offset": 1})
    assert (s.prediction, s.variance, s.clip_x0) == ("v", "beta_tilde", False)
    assert s.diffusers_inference == {"timestep_spacing": "leading", "steps_offset": 1}


@pytest.mark.parametrize("edit, match", [
    ({"thresholding": True}, "field 'thresholding': is not supported"),
    ({"variance_type": "learned"}, r"field 'variance_type': must be one of"),
    ({"beta_schedule": "sigmoid"}, r"field 'beta_schedule': must be 'linear'"),
    ({"prediction_type": "flow"}, r"field 'prediction_type': must be one of"),
    ({"clip_sample_range": 2.0}, r"jaxdiff clips x0 to \[-1, 1\] only"),
    ({"use_karras_sigmas": True}, r"field 'use_karras_sigmas': is not supported"),
    ({"_class_name": "EulerDiscreteScheduler"}, r"field '_class_name': must be one of"),
    ({"trained_betas": [0.1, 0.2]}, r"field 'trained_betas': must hold num_train_timesteps"),
])
def test_a_scheduler_config_jaxdiff_cannot_honour_is_named(edit, match):
    with pytest.raises(ValueError, match=match):
        sched.scheduler_from_config({**DDPM_CIFAR10_SCHEDULER, **edit})


def _pipeline_folder(tmp_path, **scheduler):
    """A DDPMPipeline of a random-weight tiny UNet, saved as diffusers saves it."""
    diffusers = require("diffusers")
    saved_model("UNet2DModel", tmp_path / "unet_only", **TINY_UNET)
    unet = diffusers.UNet2DModel.from_pretrained(tmp_path / "unet_only")
    folder = tmp_path / "pipeline"
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(**scheduler))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_pipeline_folder_samples_on_its_schedulers_settings(tmp_path):
    folder = _pipeline_folder(tmp_path, variance_type="fixed_large", num_train_timesteps=100)
    pipeline = pretrained.load_pipeline(folder)
    assert pipeline.scheduler.schedule.num_steps == 100 and pipeline.scheduler.variance == "beta"
    images = np.asarray(pipeline.sampler(count=3, sampler="ddpm", num_steps=10)(
        jax.random.key(0)))
    assert images.shape == (3, 8, 8, 3) and np.isfinite(images).all()
    assert np.abs(images).max() <= 1.0 + 1e-6   # x0 clipped (clip_sample) and the last mean
    with pytest.raises(ValueError, match="guidance_scale need a conditional run"):
        pipeline.sampler(count=2, guidance_scale=3.0)


def test_a_latent_or_mismatched_pipeline_is_named(tmp_path):
    folder = _pipeline_folder(tmp_path, num_train_timesteps=10)
    index = folder / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "_class_name": "LDMPipeline"}))
    for load in (pretrained.load_pipeline,
                 lambda f: evaluation.pretrained_run(f, data_name="digits")):
        with pytest.raises(ValueError, match=r"_class_name must be one of \['DDPMPipeline'"):
            load(folder)
    index.unlink()
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "variance_type": "learned_range"}))
    with pytest.raises(ValueError, match="the scheduler's variance is 'learned' but the UNet's "
                                         "learned_variance is False"):
        pretrained.load_pipeline(folder)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver++"])
def test_sample_py_pretrained_writes_a_grid_and_the_samples(sampler, tmp_path):
    folder = _pipeline_folder(tmp_path, num_train_timesteps=50)
    out = tmp_path / "out" / "samples"
    result = subprocess.run(
        [sys.executable, "experiments/sample.py", "--pretrained", str(folder), "--sampler",
         sampler, "--steps", "5", "--count", "4", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    samples = np.load(out.with_suffix(".npz"))["samples"]
    assert samples.shape == (4, 8, 8, 3) and np.isfinite(samples).all()
    assert out.with_suffix(".png").stat().st_size > 0
    assert "wrote" in result.stdout
