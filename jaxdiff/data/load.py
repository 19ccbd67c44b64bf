"""``load(name, split)``: one entry point for the embedded and the TFDS datasets."""

import numpy as np

from jaxdiff.data import embedded
from jaxdiff.data.arrays import ArrayDataset, resize_images, to_unit_range
from jaxdiff.data.tfds_source import load_tfds_raw

TFDS_PREFIX = "tfds:"


def load(name: str, split: str = "train", *, image_size: int | None = None,
         data_dir: str | None = None, download: bool = True) -> ArrayDataset:
    """Loads a labelled image dataset into memory as NHWC ``float32`` in ``[-1, 1]``.

    Args:
      name: an embedded, offline dataset -- ``"digits"`` (8x8x1, 10 classes),
        ``"mnist_5k"`` (28x28x1), ``"fashion_mnist"`` (28x28x1, Debian package) -- see
        :mod:`jaxdiff.data.embedded`; or ``"tfds:<name>"`` for any TFDS image
        classification dataset, e.g. ``"tfds:mnist"``, ``"tfds:cifar10"``.
      split: ``"train"``, ``"test"`` or (embedded datasets without a split) ``"all"``;
        TFDS datasets take any TFDS split string (``"train[:10%]"``).
      image_size: output height and width; ``None`` keeps the native size. A multiple of
        the native size upsamples (nearest neighbour: digits 8 -> 16), any other larger
        size pads with -1 (MNIST 28 -> 32). See :func:`jaxdiff.data.resize_images`.
      data_dir, download: passed to ``tfds.data_source`` (TFDS datasets only).

    Returns:
      An :class:`ArrayDataset` named ``"<name>:<split>"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
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
    else:
        raise ValueError(f"name must be one of {list(embedded.EMBEDDED_NAMES)} or "
                         f"'tfds:<tfds name>' (e.g. 'tfds:{name}'), got {name!r}")
    return ArrayDataset(images=resize_images(images, image_size),
                        labels=np.asarray(labels, np.int32), num_classes=num_classes,
                        name=f"{name}:{split}")
