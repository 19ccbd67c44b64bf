"""Embedded offline datasets: exact sizes, ranges, label histograms and splits."""

import gzip

import numpy as np
import pytest

from jaxdiff import data
from jaxdiff.data import embedded

DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # sklearn load_digits


@pytest.fixture(scope="module")
def digits_raw():
    return embedded.load_digits_raw()


def test_digits_raw_matches_sklearn(digits_raw):
    images, labels = digits_raw
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert images.min() == 0 and images.max() == 16
    assert int(images.sum(dtype=np.int64)) == 561718
    assert np.bincount(labels).tolist() == DIGITS_COUNTS


def test_digits_load_range_split_and_upsample(digits_raw):
    images, labels = digits_raw
    full = data.load("digits", "all")
    assert full.images.shape == (1797, 8, 8, 1) and full.images.dtype == np.float32
    assert full.labels.dtype == np.int32 and full.num_classes == 10
    assert full.images.min() == -1.0 and full.images.max() == 1.0
    np.testing.assert_array_equal(full.images, images / np.float32(8.0) - 1.0)
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    np.testing.assert_array_equal(test.images, full.images[4::5])
    np.testing.assert_array_equal(test.labels, labels[4::5])
    assert (np.bincount(train.labels, minlength=10) + np.bincount(test.labels, minlength=10)
            ).tolist() == DIGITS_COUNTS
    big = data.load("digits", "test", image_size=16)
    assert big.images.shape == (359, 16, 16, 1)
    np.testing.assert_array_equal(big.images[:, ::2, ::2], test.images)
    np.testing.assert_array_equal(big.images[:, 1::2, 1::2], test.images)


def test_embedded_split_deterministic_and_disjoint():
    for n in (1797, 5000, 7):
        train, test = embedded.embedded_split(n, "train"), embedded.embedded_split(n, "test")
        assert len(train) + len(test) == n and len(test) == n // 5
        assert not set(train.tolist()) & set(test.tolist())
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
        np.testing.assert_array_equal(train, embedded.embedded_split(n, "train"))


def test_mnist_5k():
    train = data.load("mnist_5k", "train")
    test = data.load("mnist_5k", "test", image_size=32)
    assert train.images.shape == (4000, 28, 28, 1) and test.images.shape == (1000, 32, 32, 1)
    images, labels = embedded.load_mnist_5k_raw()
    assert images.shape == (5000, 28, 28, 1) and labels.shape == (5000,)
    assert images.min() == 0 and images.max() == 255
    assert int(images.sum(dtype=np.int64)) == 131267102
    assert np.bincount(labels).tolist() == [500] * 10
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.min() == -1.0 and train.images.max() == 1.0
    # 28 -> 32 pads two background (-1) pixels on every side.
    np.testing.assert_array_equal(test.images[:, 2:30, 2:30], images[4::5] / np.float32(127.5)
                                  - np.float32(1.0))
    assert np.all(test.images[:, :2] == -1.0) and np.all(test.images[:, :, 30:] == -1.0)


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    np.testing.assert_array_equal(data.read_idx(path), array)
    bad = tmp_path / "bad"
    bad.write_bytes(header + array.tobytes()[:-1])
    with pytest.raises(ValueError, match="header says shape"):
        data.read_idx(bad)


def test_fashion_mnist_missing_gives_install_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        embedded.load_fashion_mnist_raw("train", directory=tmp_path)


@pytest.mark.skipif(not (embedded.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian():
    test = data.load("fashion_mnist", "test", image_size=32)
    assert test.images.shape == (10000, 32, 32, 1) and test.num_classes == 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.images.min() == -1.0 and test.images.max() == 1.0
    _, train_labels = embedded.load_fashion_mnist_raw("train")
    assert np.bincount(train_labels).tolist() == [6000] * 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope"), "name must be one of"),
    (dict(name="tfds:"), "name must be"),
    (dict(name="digits", split="validation"), "split must be one of"),
    (dict(name="fashion_mnist", split="all"), "split must be one of"),
    (dict(name="digits", image_size=4), "image_size must be"),
])
def test_load_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)


def test_array_dataset_validates():
    with pytest.raises(ValueError, match="labels must be"):
        data.ArrayDataset(np.zeros((3, 2, 2, 1), np.float32), np.zeros((4,), np.int32), 2)
    with pytest.raises(TypeError, match="images must be float32"):
        data.ArrayDataset(np.zeros((3, 2, 2, 1), np.uint8), np.zeros((3,), np.int32), 2)
