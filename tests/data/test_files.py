"""The user's own images: a generated folder of PNGs (class subfolders, train/test folders,
cropping and resizing) and array files, read into the same ArrayDataset as the embedded
sets; bad files are named."""

import numpy as np
import pytest
from PIL import Image

from jaxdiff import data


def _write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def class_folder(tmp_path):
    """10 gray 6x6 images in two class folders: class c, image k has value 20 * k + 100 * c."""
    for c, name in enumerate(("cats", "dogs")):
        for k in range(5):
            _write_png(tmp_path / "pets" / name / f"{k}.png",
                       np.full((6, 6), 20 * k + 100 * c, np.uint8))
    return tmp_path / "pets"


def test_class_subfolders_are_the_labels_and_one_in_five_is_test(class_folder):
    train = data.load(str(class_folder), "train")
    test = data.load(str(class_folder), "test")
    assert train.images.shape == (8, 6, 6, 1) and test.images.shape == (2, 6, 6, 1)
    assert train.num_classes == 2 and train.images.dtype == np.float32
    # sorted files: cats/0..4, dogs/0..4; index i % 5 == 4 is test
    np.testing.assert_array_equal(test.labels, [0, 1])
    np.testing.assert_allclose(test.images[:, 0, 0, 0], np.array([80, 180]) / 127.5 - 1,
                               atol=1e-6)
    np.testing.assert_array_equal(train.labels, [0, 0, 0, 0, 1, 1, 1, 1])


def test_train_and_test_subfolders_are_the_splits_and_images_are_cropped(tmp_path):
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:, 2:6] = (255, 0, 0)           # the centre 4x4 square is red
    for split, count in (("train", 3), ("test", 2)):
        for k in range(count):
            _write_png(tmp_path / "faces" / split / f"{k}.png", rgb)
    train = data.load(str(tmp_path / "faces"), "train", image_size=2)
    test = data.load(str(tmp_path / "faces"), "test", image_size=2)
    assert train.images.shape == (3, 2, 2, 3) and test.images.shape == (2, 2, 2, 3)
    assert train.num_classes == 1
    np.testing.assert_allclose(train.images[0, ..., 0], 1.0)      # red everywhere after crop
    np.testing.assert_allclose(train.images[0, ..., 1:], -1.0)


def test_array_files_npz_and_npy(tmp_path):
    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    np.savez(tmp_path / "a.npz", images=images, labels=np.arange(10) % 3)
    ds = data.load(str(tmp_path / "a.npz"), "train")
    assert ds.images.shape == (8, 4, 4, 1) and ds.num_classes == 3
    np.testing.assert_allclose(ds.images[0, 0, 1, 0], 1 / 127.5 - 1, atol=1e-6)
    np.save(tmp_path / "b.npy", np.linspace(-1, 1, 10 * 8 * 8 * 3, dtype=np.float32)
            .reshape(10, 8, 8, 3))
    ds = data.load(str(tmp_path / "b.npy"), "test", image_size=16)
    assert ds.images.shape == (2, 16, 16, 3) and ds.num_classes == 1


@pytest.mark.parametrize("make,match", [
    (lambda d: np.save(d / "x.npy", np.full((3, 4, 4), 200.0)), r"must lie in \[-1, 1\]"),
    (lambda d: np.savez(d / "x.npz", pixels=np.zeros((3, 4, 4), np.uint8)), "'images'"),
    (lambda d: np.save(d / "x.npy", np.zeros((3, 4), np.uint8)), r"\[N, H, W\]"),
])
def test_bad_array_files_are_named(tmp_path, make, match):
    make(tmp_path)
    name = next(p for p in tmp_path.iterdir())
    with pytest.raises((ValueError, TypeError), match=match):
        data.load(str(name), "train")


def test_folder_problems_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        data.load(str(tmp_path / "empty"))
    _write_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), np.uint8))
    _write_png(tmp_path / "mixed" / "b.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="different sizes.*data.image_size"):
        data.load(str(tmp_path / "mixed"), "all")
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        data.ArrayDataset(images=np.full((2, 2, 2, 1), 255.0, np.float32),
                          labels=np.zeros(2, np.int32), num_classes=1)
