"""``load(name, split)``: one entry point for the embedded and the TFDS datasets."""

import numpy as np

from jaxdiff.data import embedded
from jaxdiff.data.arrays import ArrayDataset, resize_images, to_unit_range
from jaxdiff.data.captions import load_pairs
from jaxdiff.data.files import (
    is_array_file,
    is_image_folder,
    load_array_file,
    load_image_folder,
)
from jaxdiff.data.tfds_source import load_tfds_raw

TFDS_PREFIX = "tfds:"


def load(name: str, split: str = "train", *, image_size: int | None = None,
         data_dir: str | None = None, download: bool = False) -> ArrayDataset:
    """Loads a labelled image dataset into memory as NHWC ``float32`` in ``[-1, 1]``.

    Args:
      name: an embedded, offline dataset -- ``"digits"`` (8x8x1, 10 classes),
        ``"mnist_5k"`` (28x28x1), ``"fashion_mnist"`` (28x28x1, Debian package) -- see
        :mod:`jaxdiff.data.embedded` -- and ``"mnist_fashion_pairs"`` (32x32x1, captioned
        pairs of both, :mod:`jaxdiff.data.captions`); ``"tfds:<name>"`` for any TFDS image
        classification dataset, e.g. ``"tfds:mnist"``, ``"tfds:cifar10"``; or the user's
        own data, a folder of image files or an ``.npz`` / ``.npy`` array file (see
        :mod:`jaxdiff.data.files`).
      split: ``"train"``, ``"test"`` or (embedded datasets without a split) ``"all"``;
        TFDS datasets take any TFDS split string (``"train[:10%]"``).
      image_size: output height and width; ``None`` keeps the native size. A multiple of
        the native size upsamples (nearest neighbour: digits 8 -> 16), any other larger
        size pads with -1 (MNIST 28 -> 32). See :func:`jaxdiff.data.resize_images`. A
        folder's images are centre-cropped and resized to it instead.
      data_dir, download: passed to ``tfds.data_source`` (TFDS datasets only). Without
        ``download`` an unprepared dataset fails at once, naming how to prepare it; with it
        TFDS downloads and prepares the dataset (network access needed).

    Returns:
      An :class:`ArrayDataset` named ``"<name>:<split>"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    noise = captions = None
    if name.startswith(TFDS_PREFIX):
        tfds_name = name[len(TFDS_PREFIX):]
        if not tfds_name:
            raise ValueError(f"name must be 'tfds:<tfds name>', got {name!r}")
        raw, labels, num_classes = load_tfds_raw(tfds_name, split, data_dir=data_dir,
                                                 download=download)
        images = to_unit_range(raw, 255)
    elif name == "digits":
        raw, labels = embedded.load_digits_raw()
        index = embedded.embedded_split(len(labels), split)
        images, labels, num_classes = to_unit_range(raw[index], 16), labels[index], 10
    elif name == "mnist_5k":
        raw, labels = embedded.load_mnist_5k_raw()
        index = embedded.embedded_split(len(labels), split)
        images, labels, num_classes = to_unit_range(raw[index], 255), labels[index], 10
    elif name == "fashion_mnist":
        raw, labels = embedded.load_fashion_mnist_raw(split)
        images, num_classes = to_unit_range(raw, 255), 10
    elif name == embedded.PAIRS_NAME:
        pairs = load_pairs(split)
        images, labels, num_classes, captions = (pairs.images, pairs.labels, pairs.num_classes,
                                                 pairs.captions)
    elif is_image_folder(name):   # cropped and resized to image_size as it is read
        raw, labels, num_classes = load_image_folder(name, split, image_size=image_size)
        images, image_size = to_unit_range(raw, 255), None
    elif is_array_file(name):
        raw, labels, num_classes, max_value, noise = load_array_file(name, split)
        images = to_unit_range(raw, max_value) if max_value else raw.astype(np.float32)
    else:
        raise ValueError(f"name must be one of {list(embedded.EMBEDDED_NAMES)}, "
                         f"'tfds:<tfds name>' (e.g. 'tfds:{name}'), a folder of images or an "
                         f".npz / .npy file, got {name!r}")
    resized = resize_images(images, image_size)
    if noise is not None and resized.shape != noise.shape:
        raise ValueError(f"image_size {image_size}: {name!r} couples each image with noise of "
                         f"its shape {noise.shape[1:]}, which fixes the size (leave it None)")
    return ArrayDataset(images=resized, labels=np.asarray(labels, np.int32),
                        num_classes=num_classes, name=f"{name}:{split}", noise=noise,
                        captions=captions)
