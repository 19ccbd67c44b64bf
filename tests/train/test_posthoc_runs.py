"""Post-hoc EMA through the loop: the tracked profiles, the snapshots on disk, resume, and
a reconstruction that sampling reads as a workdir."""

import json
import shutil

import jax
import numpy as np
import pytest

from jaxdiff import train
from jaxdiff.train import phema
from jaxdiff.train.snapshots import load_snapshot, snapshot_steps
from tests.train.util import tiny_config

STDS = (0.05, 0.1)


def _config(**train_fields):
    return tiny_config(optim={"learning_rate": 1e-3, "warmup_steps": 2, "ema_decay": 0.9,
                              "phema_stds": STDS},
                       train={"num_steps": 12, "checkpoint_every": 4, "log_every": 4,
                              "eval_every": 12, "eval_batches": 1, "sample_count": 8,
                              "sample_steps": 5, "phema_every": 4, **train_fields})


def test_the_loop_tracks_power_emas_and_writes_snapshots(tmp_path):
    state = train.train(_config(), tmp_path, progress=False)
    assert len(state.phema) == 2 and snapshot_steps(tmp_path) == [4, 8, 12]
    stds, profiles = load_snapshot(tmp_path, 12, state.phema)
    np.testing.assert_allclose(stds, STDS)
    for got, want in zip(jax.tree.leaves(profiles), jax.tree.leaves(state.phema), strict=True):
        np.testing.assert_array_equal(got, np.asarray(want))
    # the profiles differ from each other and from the parameters (they average the path)
    a, b = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(p)]) for p in state.phema)
    p = np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.params)])
    assert not np.allclose(a, b) and not np.allclose(a, p)


def test_the_update_in_the_step_is_the_power_function_ema(tmp_path):
    """One compiled step from a state whose profiles are zero: after step t = 1, beta = 0,
    every profile equals the new parameters."""
    run = train.build_run(_config())
    state = train.initial_state(run)
    state = state._replace(phema=tuple(jax.tree.map(np.zeros_like, p) for p in state.phema))
    step = train.make_train_step(train.loss_fn_for(run, train=True), run.optimizer,
                                 ema_decay=0.9,
                                 phema_exponents=tuple(phema.exponent_from_std(STDS)))
    batch = next(iter(train.train_batches(run, start_step=0)))
    new, _ = jax.jit(step)(state, batch)
    for profile in new.phema:
        for got, want in zip(jax.tree.leaves(profile), jax.tree.leaves(new.params),
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_resumed_run_tracks_the_same_profiles(tmp_path):
    """The profiles are part of the checkpoint: a run that lost its last checkpoint
    resumes from step 8 and ends with the profiles of the uninterrupted run."""
    whole = train.train(_config(), tmp_path / "whole", progress=False)
    shutil.copytree(tmp_path / "whole", tmp_path / "part")
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "12")
    resumed = train.train(_config(), tmp_path / "part", progress=False)
    for got, want in zip(jax.tree.leaves(resumed.phema), jax.tree.leaves(whole.phema),
                         strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_reconstructed_ema_is_a_workdir_the_samplers_read(tmp_path):
    train.train(_config(), tmp_path / "run", progress=False)
    out = train.write_posthoc_workdir(tmp_path / "run", tmp_path / "ema", 0.1)
    run, state = train.restore_workdir(out)
    info = json.loads((out / "posthoc.json").read_text())
    assert info["std"] == 0.1 and info["step"] == 12 and abs(sum(info["weights"]) - 1) < 1e-9
    # asking for a tracked profile at the last snapshot gives that profile
    _, source = train.restore_workdir(tmp_path / "run")
    for got, want in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(source.phema[1]),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    images = train.make_sampler(run, count=4, num_steps=3)(jax.random.key(0),
                                                           state.ema_params)
    assert images.shape == (4, 8, 8, 1) and np.isfinite(np.asarray(images)).all()
    with pytest.raises(FileExistsError):
        train.write_posthoc_workdir(tmp_path / "run", out, 0.1)
    with pytest.raises(ValueError, match="step must be one of the run's snapshot steps"):
        train.posthoc_params(tmp_path / "run", 0.1, step=10)
    earlier = train.write_posthoc_workdir(tmp_path / "run", tmp_path / "ema8", 0.05, step=8)
    assert int(train.restore_workdir(earlier)[1].step) == 8   # the step the EMA stands for


def test_settings_are_checked_and_a_run_without_snapshots_is_named(tmp_path):
    with pytest.raises(ValueError, match="train.phema_every"):
        train.validate(_config(phema_every=0), num_devices=1)
    with pytest.raises(ValueError, match="optim.phema_stds"):
        train.validate(tiny_config(optim={"phema_stds": (0.5,)}, train={"phema_every": 2}),
                       num_devices=1)
    with pytest.raises(ValueError, match="train.phema_every"):
        train.validate(tiny_config(train={"phema_every": 2}), num_devices=1)
    train.train(tiny_config(train={"num_steps": 2, "checkpoint_every": 2, "eval_every": 2,
                                   "log_every": 2}), tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="no post-hoc EMA snapshots"):
        train.posthoc_params(tmp_path, 0.1)
