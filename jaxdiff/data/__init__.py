"""Datasets for jaxdiff: offline embedded image sets, TFDS image sets, 2-D toys.

::

    from jaxdiff import data
    ds = data.load("digits", "train", image_size=16)   # or "mnist_5k", "tfds:cifar10"
    mesh = data.data_mesh()
    for step, batch in enumerate(data.batches(ds, batch_size=128, seed=0, start_step=k), k):
        batch = data.global_batch(batch, mesh)          # jax.Arrays sharded on "data"

    x = data.two_moons(key, 10_000, noise=0.05)         # float32[N, 2]
"""

from jaxdiff.data.arrays import ArrayDataset, resize_images, to_unit_range
from jaxdiff.data.embedded import EMBEDDED_NAMES, embedded_split, read_idx
from jaxdiff.data.grid import image_grid, save_image_grid
from jaxdiff.data.iterate import Position, batches, epoch_permutation, position
from jaxdiff.data.load import load
from jaxdiff.data.sharding import (
    BATCH_AXES,
    DATA_AXIS,
    FSDP_AXIS,
    batch_spec,
    data_mesh,
    device_mesh,
    global_batch,
    mesh_shape,
)
from jaxdiff.data.text import (
    TEXT_CORPUS_NAMES,
    article_labels,
    chunk,
    load_text_corpus,
    page_starts,
    random_crops,
    wikifil,
)
from jaxdiff.data.toy import gaussian_mixture, ring_of_gaussians, swiss_roll, two_moons

__all__ = [
    "BATCH_AXES",
    "DATA_AXIS",
    "EMBEDDED_NAMES",
    "FSDP_AXIS",
    "TEXT_CORPUS_NAMES",
    "ArrayDataset",
    "Position",
    "article_labels",
    "batch_spec",
    "batches",
    "chunk",
    "data_mesh",
    "device_mesh",
    "embedded_split",
    "epoch_permutation",
    "gaussian_mixture",
    "global_batch",
    "image_grid",
    "load",
    "load_text_corpus",
    "mesh_shape",
    "page_starts",
    "position",
    "random_crops",
    "read_idx",
    "resize_images",
    "save_image_grid",
    "ring_of_gaussians",
    "swiss_roll",
    "to_unit_range",
    "two_moons",
    "wikifil",
]
