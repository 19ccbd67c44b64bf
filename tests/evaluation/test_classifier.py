"""The in-domain classifier: accuracy, classifier IS, classifier FID, and its .npz cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import data, metrics
from jaxdiff.evaluation import classifier as clf_lib

STEPS = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("classifiers")
    clf = clf_lib.train_or_load_classifier("digits", cache_dir=cache, steps=STEPS, hidden=64)
    return clf, cache


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


def test_test_accuracy_on_digits(trained, digits):
    clf, _ = trained
    assert clf_lib.classifier_accuracy(clf, digits[1]) >= 0.95


def test_classifier_inception_score_of_real_digits(trained, digits):
    clf, _ = trained
    # One split: p(y) over all 359 held-out digits (10 nearly balanced classes).
    score, _ = metrics.inception_score(clf.logits_fn(), digits[1].images, num_splits=1,
                                       batch_size=400)
    assert 8.0 < score < 10.0
    # Noise gets a score far from the real data's: the classifier is not confident on it.
    noise = np.random.default_rng(0).uniform(-1, 1, digits[1].images.shape).astype(np.float32)
    noise_score, _ = metrics.inception_score(clf.logits_fn(), noise, num_splits=1,
                                             batch_size=400)
    assert noise_score < 0.5 * score


def test_classifier_fid_orders_real_above_noise(trained, digits):
    clf, _ = trained
    train, test = digits
    fn = clf.features_fn()
    stats_test = metrics.feature_stats(fn, test.images, batch_size=400)
    stats_train = metrics.feature_stats(fn, train.images, batch_size=400)
    noise = np.random.default_rng(1).uniform(-1, 1, test.images.shape).astype(np.float32)
    stats_noise = metrics.feature_stats(fn, noise, batch_size=400)
    fid_real = metrics.fid_from_stats(stats_test, stats_train)
    fid_noise = metrics.fid_from_stats(stats_test, stats_noise)
    assert stats_test.mu.shape == (64,)
    assert fid_real < 0.1 * fid_noise
    assert fid_noise > 10.0
    # FID of a set with itself is 0.
    assert metrics.fid_from_stats(stats_test, stats_test) == pytest.approx(0.0, abs=1e-6)


def test_cache_round_trip(trained, digits, tmp_path):
    clf, cache = trained
    path = clf_lib.classifier_path(clf.name, cache_dir=cache)
    assert path.exists() and path.suffix == ".npz"
    mtime = path.stat().st_mtime_ns
    again = clf_lib.train_or_load_classifier("digits", cache_dir=cache, steps=STEPS, hidden=64)
    assert path.stat().st_mtime_ns == mtime  # loaded, not retrained
    assert again.name == clf.name and again.config == clf.config
    for a, b in zip(jax.tree.leaves(clf.params), jax.tree.leaves(again.params), strict=True):
        np.testing.assert_array_equal(a, b)
    images = digits[1].images[:50]
    np.testing.assert_array_equal(clf.logits_fn()(images), again.logits_fn()(images))
    np.testing.assert_array_equal(clf.features_fn()(images), again.features_fn()(images))
    with np.load(path, allow_pickle=False) as npz:  # loads without pickle
        assert str(npz["name"]) == clf.name
    # Explicit save / load, and the name guard.
    other = clf_lib.save_classifier(tmp_path / "c.npz", clf)
    with pytest.raises(ValueError, match="holds classifier"):
        clf_lib.load_classifier(other, expected_name="classifier-other")


def test_training_is_deterministic_given_the_seed(digits):
    train = digits[0]
    a = clf_lib.train_classifier(train, steps=3, seed=7, width=4, hidden=8)
    b = clf_lib.train_classifier(train, steps=3, seed=7, width=4, hidden=8)
    c = clf_lib.train_classifier(train, steps=3, seed=8, width=4, hidden=8)
    la, lb, lc = (np.asarray(m.logits_fn()(train.images[:8])) for m in (a, b, c))
    np.testing.assert_array_equal(la, lb)
    assert np.abs(la - lc).max() > 1e-3


@pytest.mark.parametrize(("size", "downsamples", "flat"), [(8, 1, 4 * 4 * 8), (28, 2, 7 * 7 * 8),
                                                           (32, 2, 8 * 8 * 8)])
def test_architecture_for_digits_and_mnist_sizes(size, downsamples, flat):
    config = clf_lib.ClassifierConfig((size, size, 1), 10, width=4, hidden=16)
    assert config.num_downsamples == downsamples
    graphdef, params = clf_lib.init_classifier(jax.random.key(0), config)
    model = clf_lib.TrainedClassifier(config, graphdef, params, name="test")
    images = jnp.zeros((3, size, size, 1))
    assert model.logits_fn()(images).shape == (3, 10)
    assert model.features_fn()(images).shape == (3, 16)
    assert params["hidden"]["kernel"].shape == (flat, 16)


def test_bad_inputs_name_the_argument(trained, digits):
    clf, _ = trained
    with pytest.raises(ValueError, match="images"):
        clf.logits_fn()(jnp.zeros((2, 28, 28, 1)))
    with pytest.raises(TypeError, match="images"):
        clf.features_fn()(jnp.zeros((2, 8, 8, 1), jnp.int32))
    with pytest.raises(ValueError, match="steps"):
        clf_lib.train_classifier(digits[0], steps=0)
    with pytest.raises(TypeError, match="train_set"):
        clf_lib.train_classifier(digits[0].images)
    with pytest.raises(ValueError, match="dataset"):
        clf_lib.train_or_load_classifier("digits/../x", steps=1)
    with pytest.raises(ValueError, match="config.num_classes"):
        clf_lib.init_classifier(jax.random.key(0), clf_lib.ClassifierConfig((8, 8, 1), 1))
