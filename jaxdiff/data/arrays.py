"""In-memory image datasets: the ``ArrayDataset`` container and its image transforms.

Every image dataset in :mod:`jaxdiff.data` is returned as an :class:`ArrayDataset` of
NHWC ``float32`` images scaled to ``[-1, 1]`` and ``int32`` labels, held in host
(NumPy) memory; :func:`jaxdiff.data.batches` slices it into batches and
:func:`jaxdiff.data.global_batch` puts a batch on the device mesh.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """A labelled image dataset held in host memory.

    Attributes:
      images: ``float32[N, H, W, C]`` in ``[-1, 1]``.
      labels: ``int32[N]`` in ``[0, num_classes)``.
      num_classes: number of label values.
      name: the name the dataset was loaded under, with its split, e.g. ``"digits:train"``.
      noise: ``float32[N, H, W, C]`` or None: the noise each image is coupled with (a
        reflow pairs file, :mod:`jaxdiff.gaussian.reflow`); batches carry it as ``"noise"``.
      captions: the caption of each label id (``num_classes`` strings, none empty), or
        None when the labels are classes: a captioned dataset's labels index its caption
        table (:mod:`jaxdiff.data.captions`).
      pixels: for a dataset of autoencoder latents (``images`` holds the scaled latents,
        which need not lie in [-1, 1]), the image dataset they encode, row for row; None
        for images.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = ""
    noise: np.ndarray | None = None
    captions: tuple[str, ...] | None = None
    pixels: "ArrayDataset | None" = None

    def __post_init__(self):
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise ValueError(f"images must be a NumPy array [N, H, W, C], got shape "
                             f"{getattr(images, 'shape', None)}")
        if images.dtype != np.float32:
            raise TypeError(f"images must be float32, got {images.dtype}")
        if self.pixels is not None and len(self.pixels) != images.shape[0]:
            raise ValueError(f"pixels must hold the {images.shape[0]} images the latents "
                             f"encode, got {len(self.pixels)}")
        if self.pixels is None and images.size and (images.min() < -1.0 or images.max() > 1.0):
            raise ValueError(f"images must lie in [-1, 1], got values in [{images.min():g}, "
                             f"{images.max():g}] (raw 0..255 pixels? see "
                             "jaxdiff.data.to_unit_range)")
        if not isinstance(labels, np.ndarray) or labels.shape != images.shape[:1]:
            raise ValueError(f"labels must be a NumPy array of shape [N] = {images.shape[:1]}, "
                             f"got shape {getattr(labels, 'shape', None)}")
        if labels.dtype != np.int32:
            raise TypeError(f"labels must be int32, got {labels.dtype}")
        if self.noise is not None and (not isinstance(self.noise, np.ndarray)
                                       or self.noise.shape != images.shape
                                       or self.noise.dtype != np.float32):
            raise ValueError(f"noise must be a float32 NumPy array of the images' shape "
                             f"{images.shape}, got {getattr(self.noise, 'dtype', None)} "
                             f"{getattr(self.noise, 'shape', None)}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}")
        if self.captions is not None and (
                not isinstance(self.captions, tuple) or len(self.captions) != self.num_classes
                or not all(isinstance(c, str) and c.strip() for c in self.captions)):
            raise ValueError(f"captions must be a tuple of num_classes={self.num_classes} "
                             f"non-empty str (the caption of each label id)")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return self.images.shape[1:]


def to_unit_range(pixels: np.ndarray, max_value: float) -> np.ndarray:
    """Maps integer intensities ``0..max_value`` affinely onto ``float32`` ``[-1, 1]``."""
    return np.asarray(pixels, np.float32) / np.float32(max_value / 2.0) - np.float32(1.0)


def resize_images(images: np.ndarray, image_size: int | None) -> np.ndarray:
    """Brings square ``[N, S, S, C]`` images to ``image_size`` x ``image_size``.

    ``None`` or ``S`` leaves them unchanged; a multiple ``k * S`` repeats each pixel
    ``k`` x ``k`` times (nearest neighbour, e.g. digits 8 -> 16); any other size larger
    than ``S`` pads symmetrically with the background value ``-1`` (e.g. MNIST 28 -> 32,
    the padding split as evenly as possible, the extra pixel at the bottom/right).
    """
    if image_size is None:
        return images
    size = images.shape[1]
    if images.shape[2] != size:
        raise ValueError(f"images must be square to resize, got shape {images.shape}")
    if not isinstance(image_size, int | np.integer) or image_size < size:
        raise ValueError(f"image_size must be an int >= the native size {size}, "
                         f"got {image_size!r}")
    if image_size == size:
        return images
    if image_size % size == 0:
        k = image_size // size
        return np.repeat(np.repeat(images, k, axis=1), k, axis=2)
    before = (image_size - size) // 2
    after = image_size - size - before
    return np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)),
                  constant_values=np.float32(-1.0))
