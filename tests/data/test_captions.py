"""The captioned pairs: captions that fix content and layout, a held-out set never trained on,
canvases that put each item where its caption says."""

import numpy as np
import pytest

from jaxdiff import data
from jaxdiff.data import captions as c


@pytest.fixture(scope="module")
def train():
    return data.load(c.PAIRS_NAME, "train")


def test_caption_table_and_grammar():
    assert len(c.CAPTIONS) == len(set(c.CAPTIONS)) == 800
    assert c.CAPTIONS[c.combinations().index((7, 17, "side"))] == \
        "a seven on the left and a sneaker on the right"
    assert c.caption(3, 19, "stack") == "a three above an ankle boot"
    assert c.caption(1, 8, "stack") == "a one above an eight"       # articles by sound
    for i, combo in enumerate(c.combinations()):
        assert c.parse_caption(c.CAPTIONS[i]) == combo
    assert c.parse_caption("  A Seven on the LEFT and a sneaker on the right ") == (7, 17, "side")
    for bad in ("a seven", "a seven on the left and a cat on the right", "seven above two"):
        with pytest.raises(ValueError, match="is not of the form"):
            c.parse_caption(bad)


def test_held_out_combinations():
    held = c.held_out_ids()
    assert len(held) == 80
    combos = [c.combinations()[i] for i in held]
    seen = [combo for i, combo in enumerate(c.combinations()) if i not in set(held)]
    for layout in c.LAYOUTS:
        for kind in range(len(c.KINDS)):    # every kind is still seen in both places
            assert any(a == kind and lay == layout for a, _, lay in seen)
            assert any(b == kind and lay == layout for _, b, lay in seen)
        assert sum(lay == layout for *_, lay in combos) == 40


def test_splits_are_deterministic_and_hold_out(train):
    again = data.load(c.PAIRS_NAME, "train")
    np.testing.assert_array_equal(again.images, train.images)
    np.testing.assert_array_equal(again.labels, train.labels)
    assert train.images.shape == (20000, 32, 32, 1) and train.captions == c.CAPTIONS
    assert not set(train.labels.tolist()) & set(c.held_out_ids().tolist())
    test = data.load(c.PAIRS_NAME, "test")
    held = np.isin(test.labels, c.held_out_ids()).mean()
    assert len(test) == 2000 and 0.07 < held < 0.13      # ~10% of uniform draws


def test_items_are_where_the_caption_says(train):
    items, kinds = c.item_images("train")
    assert items.shape[1:] == (16, 16, 1) and kinds.max() == 19
    raw, _ = data.embedded.load_mnist_5k_raw()
    first = np.pad(raw[0].astype(np.float64) / 127.5 - 1, ((2, 2), (2, 2), (0, 0)),
                   constant_values=-1.0)
    np.testing.assert_allclose(items[0], first.reshape(16, 2, 16, 2, 1).mean((1, 3)),
                               atol=1e-6)
    rows = np.arange(64)
    layouts = np.array([c.LAYOUTS.index(c.combinations()[i][2]) for i in train.labels[rows]])
    canvases = c.compose(items, rows, rows[::-1], layouts)
    firsts, seconds = c.regions(canvases, layouts)
    np.testing.assert_array_equal(firsts, items[rows])
    np.testing.assert_array_equal(seconds, items[rows[::-1]])
    background = canvases.copy()
    for code, layout in enumerate(c.LAYOUTS):    # nothing outside the two regions
        for top, left in c._PLACES[layout]:
            background[layouts == code, top:top + 16, left:left + 16] = -1.0
    assert np.all(background == -1.0)


def test_captioned_dataset_checks_its_table():
    images = np.zeros((2, 4, 4, 1), np.float32)
    labels = np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="captions must be a tuple of num_classes=2"):
        data.ArrayDataset(images, labels, 2, captions=("a",))
    with pytest.raises(ValueError, match="non-empty str"):
        data.ArrayDataset(images, labels, 2, captions=("a", " "))
