"""Caption accuracy on real canvases: right captions score near the classifier's item accuracy,
wrong or swapped captions near zero, and the spread of identical images is zero."""

import numpy as np
import pytest

from jaxdiff.data import captions as pairs
from jaxdiff.evaluation import captions as scores


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return scores.region_classifier(cache_dir=tmp_path_factory.mktemp("clf"), steps=300)


@pytest.fixture(scope="module")
def test_split():
    return pairs.load_pairs("test")


def _swapped(ids):
    index = {combo: i for i, combo in enumerate(pairs.combinations())}
    return np.array([index[(b, a, layout)] for a, b, layout in
                     (pairs.combinations()[i] for i in ids)])


def test_real_canvases_score_as_their_captions_say(classifier, test_split):
    images, ids = test_split.images[:600], test_split.labels[:600]
    item_accuracy = scores.classifier_accuracy(classifier, scores.item_dataset("test"))
    right = scores.caption_scores(classifier, images, ids)
    assert right["caption_accuracy"] > 0.9 * item_accuracy ** 2 > 0.5
    assert right["first_region_accuracy"] > 0.8 and right["second_region_accuracy"] > 0.8
    shuffled = scores.caption_scores(classifier, images, np.roll(ids, 1))
    assert shuffled["caption_accuracy"] < 0.05
    distinct = ids[[a != b for a, b, _ in (pairs.combinations()[i] for i in ids)]]
    rows = np.isin(ids, distinct)
    swapped = scores.caption_scores(classifier, images[rows], _swapped(ids[rows]))
    assert swapped["caption_accuracy"] < 0.05                  # order matters


def test_spread_and_region_fid(classifier, test_split):
    images = np.repeat(test_split.images[:3], 4, axis=0)
    ids = np.repeat(test_split.labels[:3], 4)
    assert scores.caption_scores(classifier, images, ids)["within_caption_spread"] == 0.0
    reference, real = scores.real_reference(classifier)
    assert real["images"] == 2000
    half = scores.caption_scores(classifier, test_split.images[:1000],
                                 test_split.labels[:1000], reference=reference)
    blank = scores.caption_scores(classifier, np.full((1000, 32, 32, 1), -1.0, np.float32),
                                  test_split.labels[:1000], reference=reference)
    assert half["region_fid"] < 0.1 * blank["region_fid"]
    with pytest.raises(ValueError, match="caption_ids must be int"):
        scores.caption_scores(classifier, images, np.full(12, 800))
