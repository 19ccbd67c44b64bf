"""The evaluation report of a trained run: a tiny run trained here, evaluated with tiny counts."""

import json
import math

import numpy as np
import pytest

from jaxdiff import data, evaluation, train
from tests.train.util import tiny_config

CLASSIFIER_STEPS = 30


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A 2-step tiny digits run (T = 100) and its report (inception disabled: CPU time)."""
    workdir = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    train.train(tiny_config(train={"num_steps": 2, "checkpoint_every": 2, "log_every": 2,
                                   "eval_every": 2}), workdir, progress=False)
    updates = []
    result = evaluation.evaluate_run(
        workdir, num_samples=20, sampler="ddim", steps=4, nll_examples=24, nll_steps=10,
        seed=0, batch_size=16, diag_examples=16, inception=False,
        classifier_steps=CLASSIFIER_STEPS, cache_dir=cache, progress=False,
        on_update=lambda report: updates.append(json.loads(json.dumps(report))))
    json_path, md_path = evaluation.write_report(result, workdir / "eval")
    return workdir, cache, result, json_path, md_path, updates


def _numbers(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _numbers(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _numbers(value)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


def test_report_has_every_metric_finite_with_its_protocol(evaluated):
    workdir, _, result, json_path, md_path, _ = evaluated
    stored = json.loads(json_path.read_text())
    assert stored == json.loads(json.dumps(result))
    for field in ("classifier_fid", "classifier_fid_train_vs_test", "classifier_is_mean",
                  "classifier_is_std", "classifier_is_test_data", "bits_per_dim",
                  "bits_per_dim_stderr", "bits_per_dim_continuous_bound",
                  "bits_per_dim_continuous_bound_stderr"):
        assert isinstance(stored[field], float) and math.isfinite(stored[field]), field
    assert stored["step"] == 2 and stored["dataset"] == "digits"
    assert stored["inception_fid"] == "unavailable: disabled by the caller (inception=False)"
    assert 1.0 <= stored["classifier_is_mean"] <= 10.0
    assert stored["classifier_fid"] > 0 and stored["bits_per_dim"] > 0
    assert [r["t"] for r in stored["reconstruction"]] == [10, 25, 50, 75, 90]
    assert len(stored["loss_per_timestep"]) == 10
    hist = stored["class_histogram"]
    assert len(hist["samples"]) == len(hist["test_data"]) == 10
    assert math.isclose(sum(hist["samples"]), 1.0) and math.isclose(sum(hist["test_data"]), 1.0)
    assert 0.0 <= hist["total_variation"] <= 1.0
    p = stored["protocol"]
    assert p["samples"] == {"num_samples": 20, "sampler": "ddim", "steps": 4, "clip_x0": True,
                            "guidance_scale": None, "seed": 0, "batch_size": 16}
    assert p["reference"] == {"dataset": "digits", "split": "test", "size": 359,
                              "image_size": None}
    assert p["bits_per_dim"]["num_bins"] == 17 and p["bits_per_dim"]["respaced"]
    assert p["bits_per_dim"]["examples"] == 24 and p["bits_per_dim"]["chain_steps"] == 10
    assert p["bits_per_dim_continuous_bound"]["label"] == "bits/dim (VDM bound)"
    assert p["bits_per_dim_continuous_bound"]["examples"] == 24
    assert 0.0 <= p["classifier"]["test_accuracy"] <= 1.0
    assert all(math.isfinite(x) for x in _numbers(stored))
    # The Markdown carries every headline number and the protocol.
    md = md_path.read_text()
    for field in ("classifier_fid", "classifier_fid_train_vs_test", "classifier_is_mean",
                  "classifier_is_test_data", "bits_per_dim", "bits_per_dim_continuous_bound"):
        assert evaluation.format_value(stored[field]) in md, field
    for row in stored["reconstruction"]:
        assert evaluation.format_value(row["psnr_chain"]) in md
    for row in stored["loss_per_timestep"]:
        assert evaluation.format_value(row["loss"]) in md
    assert "20 samples, ddim 4 steps" in md and "test split (359 images)" in md
    assert p["classifier"]["name"] in md and "Inception FID | unavailable:" in md


def test_classifier_fid_of_the_test_data_against_its_reference_is_zero(evaluated):
    _, cache, _, _, _, _ = evaluated
    clf = evaluation.train_or_load_classifier("digits", steps=CLASSIFIER_STEPS,
                                           cache_dir=cache / "classifiers")
    test = data.load("digits", "test")
    ref = evaluation.classifier_reference_stats(clf, test, dataset_name="digits",
                                             cache_dir=cache / "fid_stats")
    assert ref.num == 359
    assert abs(evaluation.classifier_fid(clf, test.images, ref)) < 1e-6
    train_half = data.load("digits", "train").images[:359]
    assert evaluation.classifier_fid(clf, train_half, ref) > 1e-3


def test_the_same_seed_gives_the_same_samples(evaluated):
    workdir = evaluated[0]
    restored = evaluation.restore_run(workdir)
    a, b = (evaluation.draw_samples(restored, num_samples=5, sampler="ddim", steps=3, seed=1,
                                 batch_size=4, progress=False) for _ in range(2))
    assert a.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_name_the_argument(evaluated, tmp_path):
    workdir = evaluated[0]
    with pytest.raises(FileNotFoundError, match="workdir .* is not a directory"):
        evaluation.evaluate_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="workdir .* has no config.json"):
        evaluation.evaluate_run(tmp_path)
    (tmp_path / "config.json").write_text((workdir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no checkpoints"):
        evaluation.evaluate_run(tmp_path)
    with pytest.raises(ValueError, match="num_samples"):
        evaluation.evaluate_run(workdir, num_samples=5)
    with pytest.raises(ValueError, match="sampler"):
        evaluation.evaluate_run(workdir, sampler="lms")
    with pytest.raises(ValueError, match="nll_steps"):
        evaluation.evaluate_run(workdir, nll_steps=1)
    with pytest.raises(ValueError, match="nll_steps must be <= the run's T = 100"):
        evaluation.evaluate_run(workdir, nll_steps=101, progress=False)


def test_data_levels():
    assert evaluation.data_levels("digits") == 17
    assert evaluation.data_levels("mnist_5k") == 256


def test_each_part_of_the_report_is_handed_over_as_it_is_measured(evaluated):
    """on_update sees the report grow part by part (what evaluate.py writes, so that a stopped
    evaluation keeps its numbers), and its last call is the whole report."""
    result, updates = evaluated[2], evaluated[5]
    # classifier, Inception (disabled), bits/dim, the continuous bound, diagnostics
    assert len(updates) == 5
    assert "classifier_fid" in updates[0] and "bits_per_dim" not in updates[0]
    assert "bits_per_dim" in updates[2] and "reconstruction" not in updates[2]
    assert updates[-1] == json.loads(json.dumps(result))
