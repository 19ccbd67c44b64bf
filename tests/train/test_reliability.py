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
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_and_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    values = {k: dict(v) for k, v in TINY.items()}
    values["train"].update(num_steps=20, checkpoint_every=5, eval_every=20, log_every=5)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _start(values, straight)
    victim = _start(values, killed)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "5").exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    resumed = _start(values, killed)
    for proc in (reference, resumed):
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    a, b = train.restore_workdir(straight)[1], train.restore_workdir(killed)[1]
    assert int(a.step) == int(b.step) == 20
    for x, y in zip(jax.tree.leaves((a.params, a.ema_params, a.opt_state)),
                    jax.tree.leaves((b.params, b.ema_params, b.opt_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


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
