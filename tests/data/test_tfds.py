"""TFDS datasets through tfds.data_source, with tfds.testing.mock_data (no network)."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from jaxdiff import data  # noqa: E402


def test_mock_mnist_shapes_and_range():
    with tfds.testing.mock_data(num_examples=20):
        ds = data.load("tfds:mnist", "train")
        again = data.load("tfds:mnist", "train")
    assert ds.images.shape == (20, 28, 28, 1) and ds.images.dtype == np.float32
    assert ds.labels.shape == (20,) and ds.labels.dtype == np.int32
    assert ds.num_classes == 10 and ds.name == "tfds:mnist:train"
    assert ds.images.min() >= -1.0 and ds.images.max() <= 1.0
    assert ds.labels.min() >= 0 and ds.labels.max() < 10
    np.testing.assert_array_equal(ds.images, again.images)  # random access is deterministic


def test_mock_cifar10_test_split():
    with tfds.testing.mock_data(num_examples=6):
        ds = data.load("tfds:cifar10", "test")
    assert ds.images.shape == (6, 32, 32, 3) and ds.num_classes == 10


def test_mock_values_are_scaled_and_padded():
    def source(builder, *args, **kwargs):
        return [{"image": np.full((28, 28, 1), 51 * i, np.uint8), "label": i} for i in range(6)]

    with tfds.testing.mock_data(as_data_source_fn=source):
        ds = data.load("tfds:fashion_mnist", "train", image_size=32)
    assert ds.images.shape == (6, 32, 32, 1)
    np.testing.assert_array_equal(ds.labels, np.arange(6))
    np.testing.assert_allclose(ds.images[:, 16, 16, 0], np.arange(6) * 51 / 127.5 - 1, atol=1e-6)
    assert np.all(ds.images[:, :2] == -1.0)
    batch = next(data.batches(ds, batch_size=6, seed=0))
    np.testing.assert_array_equal(np.sort(batch["label"]), np.arange(6))


def test_unknown_tfds_name():
    with pytest.raises(ValueError, match="'tfds:no_such_dataset_xyz' is not a TFDS dataset"):
        data.load("tfds:no_such_dataset_xyz")


def test_unprepared_dataset_without_download_explains(tmp_path):
    with pytest.raises(RuntimeError, match="downloads it once"):
        data.load("tfds:mnist", data_dir=str(tmp_path), download=False)
