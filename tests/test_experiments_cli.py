"""The command-line programs as a user runs them: experiments/train.py on the user's own
data (a folder of PNGs, an .npz) with settings the config file does not write, its one-line
error for a misspelt setting, and --settings."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxdiff import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_OVERRIDES = [
    "--config.train.num_steps=2", "--config.train.checkpoint_every=2",
    "--config.train.eval_every=2", "--config.train.log_every=1", "--config.train.batch_size=8",
    "--config.train.sample_count=4", "--config.train.sample_steps=2",
    "--config.train.eval_batches=1",            # not written by digits_cpu.py
    "--config.diffusion.num_steps=10",
]


def _train(workdir, *extra, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "experiments/train.py", "--config", "experiments/configs/digits_cpu.py",
         "--workdir", str(workdir), *extra], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_train_py_trains_on_the_users_own_images(tmp_path, kind):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    if kind == "folder":
        name = tmp_path / "images"
        for i, image in enumerate(pixels):
            (name / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(name / f"class{i % 2}" / f"{i:02d}.png")
    else:
        name = tmp_path / "images.npz"
        np.savez(name, images=pixels, labels=np.arange(20) % 2)
    workdir = tmp_path / "run"
    _train(workdir, f"--config.data.name={name}", *TINY_OVERRIDES)
    config = train.load_config(workdir)
    assert config.data.name == str(name) and config.train.eval_batches == 1
    rows = train.read_metrics(workdir)
    assert [r["step"] for r in rows if "eval_loss" in r] == [2]
    assert (workdir / "samples_0000002.png").exists()
    run, state = train.restore_workdir(workdir)
    assert int(state.step) == 2 and run.dataset.images.shape == (16, 8, 8, 1)
    assert run.dataset.num_classes == 2


def test_a_misspelt_setting_is_one_line_with_the_nearest_name(tmp_path):
    result = _train(tmp_path, "--config.train.eval_batchez=1", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["train.py: unknown setting config.train.eval_batchez; did you mean "
                     "config.train.eval_batches?"]


def test_settings_lists_every_field_with_its_default():
    result = subprocess.run([sys.executable, "experiments/train.py", "--settings"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in train.setting_names():
        assert f"--config.{name}=" in result.stdout, name
    assert "--config.train.eval_batches=4  held-out batches per evaluation" in result.stdout


def test_evaluate_py_quick_writes_a_complete_report(tmp_path):
    workdir = tmp_path / "run"
    _train(workdir, *TINY_OVERRIDES)
    result = subprocess.run(
        [sys.executable, "experiments/evaluate.py", "--workdir", str(workdir), "--quick",
         "--num_samples", "20", "--steps", "2", "--batch_size", "20", "--nll_steps", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert "partial" not in report and report["inception_fid"].startswith("unavailable")
    assert report["protocol"]["samples"]["num_samples"] == 20        # the flag beats --quick
    assert report["protocol"]["diagnostics"]["examples"] == 64       # the quick preset
    assert (workdir / "eval" / "metrics.md").exists()
    assert not re.search(r"^I\d{4} ", result.stderr, re.M)           # no absl INFO lines
