"""experiments/reproduce.py and the claim modules: claim 1 (forward_process) end to end."""

import copy
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "reproduce.py"
COMMITTED = ROOT / "experiments" / "results"


def _load_reproduce():
    spec = importlib.util.spec_from_file_location("jaxdiff_reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _load_reproduce()
forward_process = reproduce.forward_process


@pytest.fixture(scope="module")
def claim1(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return out, reproduce.run_claim(forward_process, out)


def _run_script(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_claim_modules_expose_the_interface():
    names = [c.NAME for c in reproduce.CLAIMS]
    assert len(names) == len(set(names))
    for claim in reproduce.CLAIMS:
        assert isinstance(claim.NAME, str) and callable(claim.run) and callable(claim.check)


def test_forward_process_writes_results_and_figures(claim1):
    out, results = claim1
    on_disk = json.loads((out / "forward_process.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert set(on_disk) >= {"name", "claim", "setup", "tolerances", "schedules", "figures"}
    assert on_disk["setup"]["dataset"] == "digits:test" and on_disk["setup"]["dims"] == 64
    assert set(on_disk["schedules"]) == {"linear", "cosine", "sigmoid"}
    for entry in on_disk["schedules"].values():
        for part in ("measured", "expected"):
            assert {"prior_kl_per_dim", "alpha_bar_T", "alpha_bar_half",
                    "first_step_alpha_bar_below_half", "fraction_steps_snr_above_1",
                    "signal_alpha"} <= set(entry[part])
        assert len(entry["measured"]["signal_alpha"]) == len(forward_process.FIGURE_STEPS)
    for name in on_disk["figures"]:
        path = out / name
        assert path.name.startswith("forward_process") and path.exists()
        assert 0 < path.stat().st_size < 200_000
    assert {"forward_process_linear.png", "forward_process_cosine.png"} <= set(on_disk["figures"])


def test_forward_process_claim_holds(claim1):
    _, results = claim1
    assert forward_process.check(results) == []
    s = results["schedules"]
    for name in ("linear", "cosine", "sigmoid"):
        assert s[name]["measured"]["prior_kl_per_dim"] < forward_process.KL_BOUND
    assert s["cosine"]["measured"]["alpha_bar_half"] > s["linear"]["measured"]["alpha_bar_half"]


def test_closed_forms_are_the_papers_numbers():
    # Independent spot values: cosine f(1/2)/f(0) and sigmoid's exact 1/2 at T/2.
    import math
    s = forward_process.COSINE_S
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert forward_process.expected_alpha_bar_half("cosine") == pytest.approx(f(0.5) / f(0.0),
                                                                              rel=1e-12)
    assert forward_process.expected_alpha_bar_half("sigmoid") == pytest.approx(0.5, rel=1e-12)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(500)]
    assert forward_process.expected_alpha_bar_half("linear") == pytest.approx(
        math.prod(1 - b for b in betas), rel=1e-10)


@pytest.mark.parametrize("doctor", [
    lambda r: r["schedules"]["linear"]["measured"].__setitem__("prior_kl_per_dim", 2e-4),
    lambda r: r["schedules"]["cosine"]["measured"].__setitem__("alpha_bar_half", 0.05),
    lambda r: r["schedules"]["sigmoid"]["expected"].__setitem__("alpha_bar_T", 1e-3),
    lambda r: r["schedules"]["cosine"]["measured"]["signal_alpha"].__setitem__(5, 0.6),
    lambda r: r["schedules"]["linear"]["measured"].__setitem__(
        "first_step_alpha_bar_below_half", 600),
    lambda r: r["schedules"].pop("cosine"),
], ids=["kl_too_big", "cosine_loses_signal", "wrong_expected", "signal_off",
        "crossing_step", "missing_schedule"])
def test_check_fails_on_doctored_results(claim1, doctor):
    results = copy.deepcopy(claim1[1])
    doctor(results)
    assert forward_process.check(results)


def test_check_script_passes_on_committed_results():
    proc = _run_script("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "forward_process] ok" in proc.stdout


def test_check_script_fails_on_doctored_results(tmp_path):
    shutil.copy(COMMITTED / "forward_process.json", tmp_path)
    path = tmp_path / "forward_process.json"
    results = json.loads(path.read_text())
    results["schedules"]["linear"]["measured"]["prior_kl_per_dim"] = 0.5
    path.write_text(json.dumps(results))
    proc = _run_script("--check", "--out", str(tmp_path))
    assert proc.returncode != 0
    assert "FAIL" in proc.stdout and "linear" in proc.stdout


def test_check_script_fails_without_results(tmp_path):
    proc = _run_script("--check", "--out", str(tmp_path))
    assert proc.returncode != 0 and "no results file" in proc.stdout
