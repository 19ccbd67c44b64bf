"""The user's own images: a folder of image files, or an array file (``.npz`` / ``.npy``).

A **folder** holds PNG / JPEG / BMP / GIF / WebP files, read with Pillow (already the
library's PNG writer; no TensorFlow, no network). Class subfolders, if every file is in
one, are the labels, in sorted order (``cats/``, ``dogs/`` -> 0, 1); files directly in the
folder are one unlabelled class. With ``train/`` and ``test/`` subfolders those are the
splits; otherwise example ``i`` of the sorted file list is a test example when
``i % 5 == 4``, as for the embedded sets. Images are converted to grayscale when every file
is grayscale and to RGB otherwise; with ``image_size`` each is centre-cropped to a square
and resized (bilinear) to ``image_size`` x ``image_size``, without it they must all have
one size.

An **array file** holds ``images`` ``[N, H, W]`` or ``[N, H, W, C]``, ``uint8`` (0..255) or
floating in ``[-1, 1]``, and optionally integer ``labels [N]`` (an ``.npz`` with those keys;
an ``.npy`` is the images alone), and optionally floating ``noise`` of the images' shape:
the noise each image is coupled with (a reflow pairs file,
:func:`jaxdiff.gaussian.reflow_pairs`; only the ``flow`` process trains on it). Splits as
above (``i % 5 == 4`` is test).

Why Pillow rather than tfds' ``ImageFolder`` builder: because that builder needs the
split subfolders, TensorFlow to decode, and a ``tfds build`` step, while a folder of files
is what a user has; grain reads records, not image folders.
"""

import pathlib

import numpy as np

from jaxdiff.data.embedded import embedded_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
ARRAY_SUFFIXES = (".npz", ".npy")


def is_image_folder(name: str) -> bool:
    """True when ``name`` is an existing directory (a folder of images)."""
    return pathlib.Path(name).expanduser().is_dir()


def is_array_file(name: str) -> bool:
    """True when ``name`` ends in ``.npz`` or ``.npy``."""
    return name.lower().endswith(ARRAY_SUFFIXES)


def _image_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _labelled_files(folder: pathlib.Path) -> tuple[list[pathlib.Path], np.ndarray, int]:
    files = _image_files(folder)
    if not files:
        raise ValueError(f"data.name {str(folder)!r}: no image files "
                         f"({', '.join(IMAGE_SUFFIXES)}) in the folder")
    parents = {f.parent for f in files}
    if parents == {folder}:
        return files, np.zeros(len(files), np.int32), 1
    if folder in parents or any(p.parent != folder for p in parents):
        raise ValueError(f"data.name {str(folder)!r}: put every image either directly in the "
                         "folder (unlabelled) or in one class subfolder each (one level deep)")
    classes = sorted(p.name for p in parents)
    labels = np.array([classes.index(f.parent.name) for f in files], np.int32)
    return files, labels, len(classes)


def _read_image(path: pathlib.Path, mode: str, image_size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert(mode)
        if image_size is not None:
            w, h = image.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize(
                (image_size, image_size), Image.BILINEAR)
        pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _split_root(folder: pathlib.Path, split: str) -> tuple[pathlib.Path, bool]:
    """The folder that holds ``split`` and whether it is the split itself (no hold-out)."""
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for {str(folder)!r} (its "
                             f"train/ and test/ subfolders), got {split!r}")
        return folder / split, True
    return folder, False


def load_image_folder(path: str, split: str, *,
                      image_size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(images uint8 [N, H, W, C], labels int32 [N], num_classes)`` of ``split`` of a
    folder of image files (see the module docstring)."""
    folder, is_split = _split_root(pathlib.Path(path).expanduser(), split)
    files, labels, num_classes = _labelled_files(folder)
    if not is_split:
        index = embedded_split(len(files), split)
        files, labels = [files[i] for i in index], labels[index]
    from PIL import Image

    modes = set()
    for f in files:
        with Image.open(f) as image:
            modes.add(image.mode)
    mode = "L" if modes <= {"L", "1", "I;16", "I"} else "RGB"
    images = [_read_image(f, mode, image_size) for f in files]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        first = images[0].shape
        odd = next(f for f, im in zip(files, images, strict=True) if im.shape != first)
        raise ValueError(f"data.name {path!r}: images have different sizes ({first} and "
                         f"{odd.name}: ...); set data.image_size to crop and resize them")
    return np.stack(images), labels, num_classes


def load_array_file(path: str, split: str):
    """``(images [N, H, W, C], labels int32 [N], num_classes, max_value, noise)`` of ``split``
    of an ``.npz`` / ``.npy`` file: ``max_value`` 255 for ``uint8`` images, 0 for floating
    ones already in ``[-1, 1]``; ``noise`` float32 of the images' shape, or None."""
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"data.name {path!r}: no such file")
    loaded = np.load(file, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        images, labels, noise = loaded, None, None
    else:
        with loaded:
            if "images" not in loaded:
                raise ValueError(f"data.name {path!r}: an .npz needs an 'images' array "
                                 f"(and optionally 'labels'), has {sorted(loaded.files)}")
            images = loaded["images"]
            labels = loaded["labels"] if "labels" in loaded else None
            noise = loaded["noise"] if "noise" in loaded else None
    if noise is not None and (noise.shape != images.shape
                              or not np.issubdtype(noise.dtype, np.floating)):
        raise ValueError(f"data.name {path!r}: noise must be floating of the images' shape "
                         f"{images.shape}, got {noise.dtype} {noise.shape}")
    split_images, labels, num_classes, max_value = _array_split(path, images, labels, split)
    if noise is not None:
        noise = np.asarray(noise[embedded_split(len(noise), split)], np.float32).reshape(
            split_images.shape)
    return split_images, labels, num_classes, max_value, noise


def _array_split(path, images, labels, split):
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"data.name {path!r}: images must be [N, H, W] or [N, H, W, C], "
                         f"got shape {images.shape}")
    if images.dtype == np.uint8:
        max_value = 255.0
    elif np.issubdtype(images.dtype, np.floating):
        lo, hi = float(images.min()), float(images.max())
        if lo < -1.0 or hi > 1.0:
            raise ValueError(f"data.name {path!r}: floating images must lie in [-1, 1], got "
                             f"values in [{lo:g}, {hi:g}]; store 0..255 pixels as uint8")
        max_value = 0.0
    else:
        raise TypeError(f"data.name {path!r}: images must be uint8 (0..255) or floating in "
                        f"[-1, 1], got dtype {images.dtype}")
    if labels is None:
        labels, num_classes = np.zeros(len(images), np.int32), 1
    else:
        labels = np.asarray(labels)
        if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"data.name {path!r}: labels must be integers of shape "
                             f"{images.shape[:1]}, got {labels.dtype} {labels.shape}")
        if labels.size and labels.min() < 0:
            raise ValueError(f"data.name {path!r}: labels must be >= 0")
        num_classes = int(labels.max()) + 1 if labels.size else 1
        labels = labels.astype(np.int32)
    index = embedded_split(len(images), split)
    return images[index], labels[index], num_classes, max_value
