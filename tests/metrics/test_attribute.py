"""The n-gram naive Bayes attribute classifier against a loop-by-loop float64 Bayes rule."""

import collections
import math

import numpy as np
import pytest

from jaxdiff.metrics.attribute import fit_ngram_classifier, ngram_ids


def _reference_log_posterior(train_rows, train_labels, row, *, classes, alphabet, order,
                             smoothing):
    """Bayes' rule with Laplace-smoothed n-gram likelihoods, one n-gram at a time."""
    counts = [collections.Counter() for _ in range(classes)]
    for r, y in zip(train_rows, train_labels, strict=True):
        counts[y].update(tuple(r[j:j + order]) for j in range(len(r) - order + 1))
    scores = []
    for y in range(classes):
        total = sum(counts[y].values()) + smoothing * alphabet ** order
        score = math.log(np.mean(np.asarray(train_labels) == y))
        for j in range(len(row) - order + 1):
            score += math.log((counts[y][tuple(row[j:j + order])] + smoothing) / total)
        scores.append(score)
    top = max(scores)
    norm = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - norm for s in scores]


@pytest.mark.parametrize("order, smoothing", [(1, 1.0), (2, 0.5), (3, 2.0)])
def test_posteriors_equal_the_loop_by_loop_bayes_rule(order, smoothing):
    rng = np.random.default_rng(order)
    rows = rng.integers(0, 4, size=(30, 9))
    labels = rng.integers(0, 3, size=30)
    labels[:3] = [0, 1, 2]
    test = rng.integers(0, 4, size=(5, 7))
    classifier = fit_ngram_classifier(rows, labels, num_classes=3, alphabet=4, order=order,
                                      smoothing=smoothing)
    expected = [_reference_log_posterior(rows, labels, row, classes=3, alphabet=4,
                                         order=order, smoothing=smoothing) for row in test]
    np.testing.assert_allclose(classifier.log_probs(test), expected, rtol=1e-12, atol=1e-12)


def test_ngram_ids_enumerate_the_windows():
    np.testing.assert_array_equal(ngram_ids(np.array([[1, 2, 0, 3]]), order=2, alphabet=4),
                                  [[1 * 4 + 2, 2 * 4 + 0, 0 * 4 + 3]])


def test_separable_classes_are_recognised():
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 3, (40, 20)), rng.integers(3, 6, (40, 20))])
    labels = np.repeat([0, 1], 40)
    classifier = fit_ngram_classifier(rows, labels, num_classes=2, alphabet=6, order=2)
    held_out = np.concatenate([rng.integers(0, 3, (10, 20)), rng.integers(3, 6, (10, 20))])
    assert classifier.accuracy(held_out, np.repeat([0, 1], 10)) == 1.0


@pytest.mark.parametrize("rows, labels, match", [
    (np.zeros((4, 5), int), np.array([0, 0, 0, 0]), "labels must cover every class"),
    (np.full((4, 5), 7), np.array([0, 1, 0, 1]), r"ids in \[0, alphabet=4\)"),
    (np.zeros((4, 2), int), np.array([0, 1, 0, 1]), "fewer than order=3"),
    (np.zeros((4, 5), int), np.array([0, 1]), "labels must be int with shape"),
])
def test_bad_input_is_named(rows, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_ngram_classifier(rows, labels, num_classes=2, alphabet=4, order=3)
