"""Standard image datasets by their TFDS name, read with ``tfds.data_source``.

``tfds.data_source`` reads the ``array_record`` files that ``tfds`` prepares, with random
access and without TensorFlow. Preparing them downloads the dataset once (online); after
that, with the same ``data_dir``, it works offline.
"""

import numpy as np


def load_tfds_raw(name: str, split: str, *, data_dir: str | None = None,
                  download: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Reads a whole split of an image-classification TFDS dataset into memory.

    Args:
      name: TFDS name, e.g. ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``.
      split: TFDS split string, e.g. ``"train"``, ``"test"``, ``"train[:10%]"``.
      data_dir: TFDS data directory (``None``: TFDS's default, ``~/tensorflow_datasets``).
      download: whether TFDS may download and prepare the dataset when it is absent.

    Returns:
      ``(images uint8[N, H, W, C], labels int32[N], num_classes)``.
    """
    import tensorflow_datasets as tfds  # noqa: PLC0415 (slow import, only when asked)

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"name 'tfds:{name}' is not a TFDS dataset: {str(e)[:200]}") from e
    except Exception as e:
        raise RuntimeError(
            f"could not open TFDS dataset {name!r} split {split!r} "
            f"(data_dir={data_dir!r}, download={download}): {str(e).splitlines()[0][:200]}. "
            f"tfds.data_source needs the dataset prepared in array_record format, which "
            f"downloads it once: on a machine with network access run `tfds build {name} "
            f"--file_format=array_record --data_dir DIR` and copy DIR here (data_dir / "
            f"$TFDS_DATA_DIR), or allow the download (download=True, data.download=True); or "
            f"use an embedded dataset ('digits', 'mnist_5k', 'fashion_mnist'), a folder of "
            f"images or an .npz file") from e
    # The builder's metadata (also available under tfds.testing.mock_data, whose sources
    # need not carry a dataset_info).
    features = tfds.builder(name, data_dir=data_dir).info.features
    if "image" not in features or "label" not in features:
        raise ValueError(f"TFDS dataset {name!r} must have 'image' and 'label' features, "
                         f"has {sorted(features.keys())}")
    num_classes = int(features["label"].num_classes)
    num = len(source)
    if num == 0:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty")
    first = source[0]
    images = np.empty((num, *np.shape(first["image"])), np.uint8)
    labels = np.empty((num,), np.int32)
    for i in range(num):
        example = source[i]
        images[i] = example["image"]
        labels[i] = example["label"]
    return images, labels, num_classes
