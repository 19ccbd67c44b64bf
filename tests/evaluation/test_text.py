"""The text evaluation report: its numbers are the library's bounds and metrics."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxdiff import autoregressive, evaluation, train
from jaxdiff.evaluation import text as text_evaluation
from tests.train.util import TINY_TEXT, tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny masked-diffusion and autoregressive runs (4 steps each)."""
    root = tmp_path_factory.mktemp("text_runs")
    for process, schedule, steps in (("masked", "loglinear", 4), ("autoregressive", None, None)):
        config = tiny_config(TINY_TEXT, diffusion={"process": process, "schedule": schedule},
                             train={"sample_steps": steps})
        train.train(config, root / process, progress=False)
    return root


def test_text_report_numbers(runs, tmp_path):
    report = evaluation.evaluate_text_run(runs / "masked", num_samples=8, steps=4,
                                       bound_samples=2, examples=24, batch_size=8,
                                       ar_workdir=runs / "autoregressive")
    assert report["process"] == "masked" and report["rows"] == 24
    assert report["perplexity_bound"] == pytest.approx(2.0 ** report["bpc"], rel=1e-5)
    assert 3.0 < report["bpc"] < 8.0 and 0 < report["bpc_stderr"] < 1.0
    quality = report["quality"]["samples"]
    assert set(quality) == {"distinct_1", "distinct_2", "distinct_3", "distinct_4",
                            "self_bleu", "character_entropy", "generative_perplexity"}
    assert 0 < quality["character_entropy"] <= np.log(27)
    assert 0 < quality["distinct_1"] <= 1
    assert all(quality[f"distinct_{n}"] is None or 0 <= quality[f"distinct_{n}"] <= 1
               for n in (2, 3, 4))
    # An untrained AR model gives a per-character perplexity near the 27 characters.
    assert 10 < quality["generative_perplexity"] < 60
    assert len(report["token_accuracy"]) == text_evaluation.ACCURACY_BUCKETS
    assert report["generation"]["median_s"] > 0
    assert all(len(text) == 16 for text in report["examples"])
    json_path, md_path = evaluation.write_text_report(report, tmp_path)
    assert json.loads(json_path.read_text())["bpc"] == report["bpc"]
    assert "bits per character" in md_path.read_text()


def test_autoregressive_bpc_is_the_exact_nll(runs):
    run, state = train.restore_workdir(runs / "autoregressive")
    rows = text_evaluation.test_rows(run, 20)
    result = text_evaluation.bits_per_char(run, state.ema_params, rows, bound_samples=1, seed=0,
                                       batch_size=8)         # 20 rows: a padded last batch
    apply_fn = run.apply_fn()
    nll = autoregressive.sequence_nll(lambda x: apply_fn(state.ema_params, x, None),
                                      jnp.asarray(rows), bos_id=27)
    per_char = np.asarray(nll) / (16 * math.log(2))
    assert result["rows"] == 20
    assert result["bpc"] == pytest.approx(per_char.mean(), rel=1e-5)
    assert result["bpc_stderr"] == pytest.approx(per_char.std(ddof=1) / math.sqrt(20),
                                                 rel=1e-4)


def test_sample_quality_on_known_texts():
    quality = evaluation.sample_quality(["a b a b", "c d c d"])
    assert quality["distinct_1"] == pytest.approx(4 / 8)
    assert quality["distinct_2"] == pytest.approx(4 / 6)
    assert quality["distinct_4"] == pytest.approx(2 / 2)
    assert quality["self_bleu"] == pytest.approx(0.0)
    # "a b a b": a, b twice and three spaces; the same counts in "c d c d"
    assert quality["character_entropy"] == pytest.approx(
        float(scipy.stats.entropy([2, 2, 3])))
    assert "generative_perplexity" not in quality
    assert evaluation.sample_quality(["ab", "cd"])["distinct_2"] is None   # one word each


def test_text_report_refuses_an_image_run_and_bad_counts(runs, tmp_path):
    with pytest.raises(ValueError, match="bound_samples"):
        evaluation.evaluate_text_run(runs / "masked", bound_samples=0)
    with pytest.raises(ValueError, match="not a model with an exact likelihood"):
        evaluation.evaluate_text_run(runs / "masked", num_samples=8, steps=2, bound_samples=1,
                                  examples=8, batch_size=8, ar_workdir=runs / "masked")


def test_the_text_report_is_handed_over_part_by_part(runs):
    updates = []
    report = evaluation.evaluate_text_run(
        runs / "masked", num_samples=4, steps=2, bound_samples=1, examples=8, batch_size=4,
        progress=False, on_update=lambda r: updates.append(sorted(r)))
    assert len(updates) == 4 and updates[-1] == sorted(report)
    assert "bpc" in updates[0] and "token_accuracy" not in updates[0]
    assert "quality" not in updates[2] and "quality" in updates[3]
