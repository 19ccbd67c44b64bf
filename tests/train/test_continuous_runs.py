"""``flow`` and ``edm`` through the training loop: they train, sample with every solver and
evaluate; their objective is the continuous-time loss of the math; settings they do not
read are named errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import gaussian, train
from jaxdiff.models.functional import bind
from tests.models.util import random_params
from tests.train.util import tiny_config


def continuous_config(process: str, **diffusion) -> train.ExperimentConfig:
    return tiny_config(diffusion={"process": process, "schedule": None, **diffusion},
                       train={"num_steps": 8, "eval_every": 8, "checkpoint_every": 8,
                              "sample_steps": None})


@pytest.mark.parametrize("process", ["flow", "edm"])
def test_a_continuous_run_trains_samples_with_every_solver_and_resumes(process, tmp_path):
    config = continuous_config(process)
    state = train.train(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert int(state.step) == 8 and np.isfinite([r["loss"] for r in rows if "loss" in r]).all()
    assert any("eval_loss" in r for r in rows)
    assert (tmp_path / "samples_0000008.png").is_file()
    run, restored = train.restore_workdir(tmp_path)
    assert run.config == config and int(restored.step) == 8
    for solver in run.task.samplers:
        images = run.task.sampler(run, count=4, sampler=solver, num_steps=3)(
            jax.random.key(0), restored.ema_params)
        assert images.shape == (4, 8, 8, 1) and np.isfinite(np.asarray(images)).all()
        clipped = run.task.sampler(run, count=4, sampler=solver, num_steps=3, clip_x0=True)(
            jax.random.key(0), restored.ema_params)
        assert float(jnp.abs(clipped).max()) <= 1.0         # x0 clipped to the data range


@pytest.mark.parametrize("process, network, expected", [
    ("flow", lambda run: (lambda f: gaussian.with_model_time(f, gaussian.rectified_flow())),
     dict(prediction="velocity", density="logit_normal", weighting="uniform")),
    ("edm", lambda run: (lambda f: gaussian.edm_denoiser(f, sigma_data=0.5)),
     dict(prediction="x0", density="log_normal", weighting="edm",
          weighting_options={"sigma_data": 0.5})),
])
def test_the_objective_is_the_continuous_loss_with_the_processes_defaults(
        process, network, expected):
    run = train.build_run(continuous_config(process))
    params = train.initial_state(run).params
    batch = {"image": jnp.asarray(run.dataset.images[:8]),
             "label": jnp.asarray(run.dataset.labels[:8])}
    key = jax.random.key(3)
    got = run.task.objective(run)(params, key, batch)
    key_loss, key_dropout, _ = jax.random.split(key, 3)
    denoiser = network(run)(bind(run.apply_fn(train=True), params, key_dropout))
    want = gaussian.continuous_loss(key_loss, denoiser, run.process, batch["image"], **expected)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_flow_settings_reach_the_loss_and_the_sampler():
    run = train.build_run(continuous_config("flow", schedule="vp_cosine", prediction="eps",
                                            time_density="mode", time_shift=3.0))
    assert run.process.name == "vp_cosine"
    params = train.initial_state(run).params
    batch = {"image": jnp.asarray(run.dataset.images[:8])}
    key = jax.random.key(4)
    key_loss, key_dropout, _ = jax.random.split(key, 3)
    denoiser = gaussian.with_model_time(bind(run.apply_fn(train=True), params, key_dropout),
                                        run.process)
    want = gaussian.continuous_loss(key_loss, denoiser, run.process, batch["image"],
                                    prediction="eps", density="mode",
                                    density_options={"shift": 3.0})
    np.testing.assert_allclose(run.task.objective(run)(params, key, batch), want, rtol=1e-6)


@pytest.mark.parametrize("process, diffusion, match", [
    ("gaussian", {"time_density": "logit_normal"},
     "diffusion.time_density: is not a setting of process 'gaussian'"),
    ("flow", {"sigma_data": 0.5}, "diffusion.sigma_data: is not a setting of process 'flow'"),
    ("edm", {"prediction": "eps"}, "diffusion.prediction: is not a setting of process 'edm'"),
    ("flow", {"time_density": "log_normal"}, "diffusion.time_density: must be one of"),
    ("edm", {"schedule": "rectified_flow"}, "diffusion.schedule: for process 'edm' must be"),
    ("flow", {"time_shift": 0.0}, "diffusion.time_shift: must be > 0"),
    ("flow", {"time_density": "mode", "density_mean": 0.5},
     "density_mean / density_std parameterise logit_normal and log_normal"),
    ("flow", {"learned_variance": True},
     "diffusion.learned_variance: is not a setting of process 'flow'"),
    ("edm", {"num_steps": 1000}, "diffusion.num_steps: is not a setting of process 'edm'"),
    ("flow", {"hybrid_coeff": 0.01}, "diffusion.hybrid_coeff: is not a setting of process"),
    ("flow", {"label_dropout": 0.1}, "diffusion.label_dropout: is for conditional runs"),
    ("gaussian", {"label_dropout": 0.2}, "diffusion.label_dropout: is for conditional runs"),
    ("flow", {"prediction": "score"}, "diffusion.prediction: must be one of"),
    ("flow", {"prediction": "eps"}, "diffusion.prediction: 'eps' cannot be sampled on the "
                                    "'rectified_flow' path"),
    ("flow", {"time_density": "uniform", "density_std": 0.5},
     "diffusion.density_std: density_mean / density_std parameterise"),
])
def test_settings_a_process_cannot_take_are_named_before_training(process, diffusion, match):
    with pytest.raises(ValueError, match=match):
        train.validate(continuous_config(process, **diffusion), num_devices=1)


def test_every_task_is_hashable_and_names_its_process_owned_settings():
    """A Task is a frozen value (usable as a static argument); its settings are among the
    process-owned fields, with defaults the process can run on."""
    from jaxdiff import tasks
    from jaxdiff.tasks.base import PROCESS_SETTINGS

    for task in tasks.TASKS.values():
        assert isinstance(hash(task), int)
        assert set(task.settings) <= set(PROCESS_SETTINGS), task.name
    assert tasks.TASKS["edm"].settings["sigma_data"] == 0.5
    assert tasks.TASKS["flow"].settings["prediction"] == "velocity"
    assert tasks.TASKS["gaussian"].settings == {
        "prediction": "eps", "weighting": "uniform", "num_steps": 1000,
        "learned_variance": False, "label_dropout": 0.1}
    assert tasks.TASKS["absorbing"].settings == {"num_steps": 1000, "hybrid_coeff": 0.01,
                                                 "label_dropout": 0.1}
    assert tasks.TASKS["masked"].settings == {"time_conditioning": True, "label_dropout": 0.1}
    assert tasks.TASKS["block"].settings == {"block_size": 4, "label_dropout": 0.1}
    assert tasks.TASKS["autoregressive"].settings == tasks.TASKS["sedd_uniform"].settings == {}


@pytest.mark.parametrize("process", ["gaussian", "flow"])
def test_a_conditional_run_drops_labels_at_the_default_rate_unless_set(process):
    """label_dropout None on a class-conditional run trains at the process's 0.1; the
    objective with 0.1 written out is the same function (same loss for the same key)."""
    config = continuous_config(process, **({"schedule": "cosine"} if process == "gaussian"
                                           else {}))
    conditional = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                       conditional=True))
    explicit = dataclasses.replace(conditional, diffusion=dataclasses.replace(
        conditional.diffusion, label_dropout=0.1))
    never = dataclasses.replace(explicit, diffusion=dataclasses.replace(
        explicit.diffusion, label_dropout=0.0))
    assert train.with_process_defaults(conditional) == train.with_process_defaults(explicit)
    run = train.build_run(conditional)
    # random: the zero-initialised layers of a fresh network ignore the labels
    params = random_params(train.initial_state(run).params)
    batch = {"image": jnp.asarray(run.dataset.images[:64]),
             "label": jnp.asarray(run.dataset.labels[:64])}
    losses = [train.loss_fn_for(train.build_run(c), train=True)(params, jax.random.key(3), batch)
              for c in (conditional, explicit, never)]
    np.testing.assert_array_equal(losses[0], losses[1])
    assert np.abs(losses[0] - losses[2]).max() > 1e-4   # some labels were dropped


def test_the_continuous_bound_of_each_image_process():
    """VDM's bound beside bits/dim: for gaussian on its schedule as a path (the network told
    its fractional step), for edm on ve; rectified flow has none (sigma = 0 at t = 0)."""
    x0 = None
    for process in ("gaussian", "edm"):
        config = continuous_config(process) if process != "gaussian" else continuous_config(
            "gaussian", schedule="cosine")
        run = train.build_run(config)
        params = train.initial_state(run).params
        x0 = jnp.asarray(run.eval_dataset.images[:4])
        bpd, protocol = run.task.evaluation.continuous_bound(run, num_bins=17)
        got = np.asarray(bpd(jax.random.key(1), params, x0, None))
        path = (gaussian.schedule_path(run.process) if process == "gaussian"
                else run.process)
        bound = bind(run.apply_fn(), params)
        fn = (gaussian.with_model_time(bound, path) if process == "gaussian"
              else gaussian.edm_denoiser(bound, sigma_data=0.5))
        prediction = "eps" if process == "gaussian" else "x0"
        want = np.mean([gaussian.vdm_bits_per_dim(jax.random.fold_in(jax.random.key(1), i),
                                                  fn, path, x0, prediction=prediction,
                                                  num_bins=17) for i in range(16)], axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-4)
        assert np.all(got > 0) and protocol["label"] == "bits/dim (VDM bound)"
    run = train.build_run(continuous_config("flow"))
    with pytest.raises(ValueError, match="sigma = 0"):
        run.task.evaluation.continuous_bound(run, num_bins=17)


def test_every_run_samples_on_both_clocks_and_names_the_other_clocks_options():
    """Discrete samplers on flow / edm runs (their path's discrete view), ODE solvers on a
    gaussian run (its schedule as a path); an option of the other clock is an error."""
    for process, samplers in (("gaussian", ("euler", "midpoint")),
                              ("flow", ("ddim", "dpm_solver++", "ddpm")),
                              ("edm", ("ddim", "dpm_solver++"))):
        config = continuous_config(process, schedule="cosine" if process == "gaussian" else None)
        run = train.build_run(config)
        params = train.initial_state(run).params
        for sampler in samplers:
            images = run.task.sampler(run, count=4, sampler=sampler, num_steps=4)(
                jax.random.key(0), params)
            assert images.shape == (4, 8, 8, 1) and np.isfinite(np.asarray(images)).all()
    gaussian_run = train.build_run(continuous_config("gaussian", schedule="cosine"))
    with pytest.raises(ValueError, match="eta and variance"):
        gaussian_run.task.sampler(gaussian_run, count=2, sampler="euler", eta=0.5)
    flow_run = train.build_run(continuous_config("flow"))
    with pytest.raises(ValueError, match="s_churn"):
        flow_run.task.sampler(flow_run, count=2, sampler="ddim", s_churn=1.0)
    with pytest.raises(ValueError, match="eta"):
        flow_run.task.sampler(flow_run, count=2, sampler="euler", eta=0.5)
