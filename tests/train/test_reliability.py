"""Reliability: kill -9 and resume, corrupted checkpoints, non-finite losses."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxdiff import train
from tests.train.util import TINY, tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN_SCRIPT = """
import json, sys
from jaxdiff import train
train.train(train.from_dict(json.loads(sys.argv[1])), sys.argv[2], progress=False)
"""


def _start(values: dict, workdir: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, json.dumps(values), str(workdir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: pathlib.Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, f"no {path} within 300 s"
        time.sleep(0.05)


def _assert_same_state(a_dir, b_dir, step: int) -> None:
    a, b = train.restore_workdir(a_dir)[1], train.restore_workdir(b_dir)[1]
    assert int(a.step) == int(b.step) == step
    for x, y in zip(jax.tree.leaves((a.params, a.ema_params, a.opt_state)),
                    jax.tree.leaves((b.params, b.ema_params, b.opt_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _logged_steps(workdir) -> list[tuple[int, str]]:
    return [(row["step"], "eval" if "eval_loss" in row else "train")
            for row in train.read_metrics(workdir)]


def test_sigkill_and_sigterm_then_resume_are_bit_identical_to_an_uninterrupted_run(tmp_path):
    """kill -9 after the step-5 checkpoint, and SIGTERM mid-run (which saves the step it is
    at and exits 0): resumed, both end bit-identical to an uninterrupted run, and
    metrics.jsonl holds each logged step once."""
    values = {k: dict(v) for k, v in TINY.items()}
    values["train"].update(num_steps=20, checkpoint_every=5, eval_every=10, log_every=5)
    straight, killed, stopped = tmp_path / "straight", tmp_path / "killed", tmp_path / "stopped"
    reference, victim, preempted = (_start(values, d) for d in (straight, killed, stopped))
    _wait_for(killed / "checkpoints" / "5", victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    _wait_for(stopped / "checkpoints" / "5", preempted)
    preempted.send_signal(signal.SIGTERM)
    out, err = preempted.communicate(timeout=300)
    assert preempted.returncode == 0, err.decode()[-2000:]
    stop_step = int(re.search(r"SIGTERM: stopped after step (\d+)", out.decode()).group(1))
    assert (stopped / "checkpoints" / str(stop_step)).exists()   # the step it stopped at
    resumed = [_start(values, d) for d in (killed, stopped)]
    for proc in [reference, *resumed]:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    for workdir in (killed, stopped):
        _assert_same_state(straight, workdir, 20)
        logged = _logged_steps(workdir)
        assert len(logged) == len(set(logged)), logged
    assert (20, "eval") in _logged_steps(killed) and (20, "eval") in _logged_steps(stopped)


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    config = tiny_config(train={"num_steps": 8, "checkpoint_every": 4, "eval_every": 8})
    train.train(config, tmp_path, progress=False)
    latest = tmp_path / "checkpoints" / "8"
    for path in latest.rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "state" in path.parts:
            path.write_bytes(b"\0" * 7)        # half-written / garbage files
    with pytest.warns(UserWarning, match="step 8"):
        state = train.restore_workdir(tmp_path)[1]
    assert int(state.step) == 4
    # Moved aside (kept), so that the next pass over step 8 writes it again.
    assert (tmp_path / "checkpoints.unreadable" / "8").is_dir() and not latest.exists()
    train.train(config, tmp_path, progress=False)
    assert int(train.restore_workdir(tmp_path)[1].step) == 8


def test_unreadable_checkpoints_are_never_silently_replaced(tmp_path):
    config = tiny_config(train={"num_steps": 4, "checkpoint_every": 4, "eval_every": 4})
    train.train(config, tmp_path, progress=False)
    for path in (tmp_path / "checkpoints" / "4").rglob("*"):
        if path.is_file() and "state" in path.parts:
            path.write_bytes(b"\0")
    with pytest.warns(UserWarning, match="step 4"), pytest.raises(RuntimeError,
                                                                  match="could be restored"):
        train.train(config, tmp_path, progress=False)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(optim={"learning_rate": 1e30, "warmup_steps": 0},
                         train={"num_steps": 20, "checkpoint_every": 1, "log_every": 1,
                                "eval_every": 20})
    with pytest.raises(FloatingPointError, match=r"at step (\d+)") as info:
        train.train(config, tmp_path, progress=False)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and max(steps) <= bad_step
    state = train.restore_workdir(tmp_path)[1]
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))
