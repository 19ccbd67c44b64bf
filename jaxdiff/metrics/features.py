"""Batched feature extraction: any jitted ``feature_fn(images) -> [B, D]`` over a large set.

The same loop serves Inception features (FID), Inception or classifier logits (IS) and a
classifier's penultimate features (classifier FID). Every batch is padded to ``batch_size``
so ``feature_fn`` compiles once; padding rows are dropped from the result. With ``sharding``
(e.g. ``NamedSharding(mesh, P("data"))``) each batch is laid out over the devices before the
call, and a jitted ``feature_fn`` then runs data-parallel.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdiff.metrics.frechet import FeatureStats, StatsAccumulator

FeatureFn = Callable[[Any], Any]


def _batches(images, batch_size: int) -> tuple[Iterable, int | None]:
    if hasattr(images, "shape") and hasattr(images, "ndim"):
        if images.ndim < 1 or images.shape[0] == 0:
            raise ValueError(f"images must be a non-empty batch [N, ...], got {images.shape}")
        n = images.shape[0]
        return (images[i : i + batch_size] for i in range(0, n, batch_size)), n
    if isinstance(images, Iterable) and not isinstance(images, (str, bytes)):
        return iter(images), None
    raise ValueError(
        f"images must be an array [N, ...] or an iterable of batches, got {type(images).__name__}"
    )


def _pad(batch, batch_size: int):
    n = batch.shape[0]
    if n == batch_size:
        return batch
    xp = jnp if isinstance(batch, jax.Array) else np
    filler = xp.zeros((batch_size - n, *batch.shape[1:]), dtype=batch.dtype)
    return xp.concatenate([batch, filler], axis=0)


def map_batches(
    feature_fn: FeatureFn,
    images,
    *,
    batch_size: int = 100,
    progress: bool = False,
    desc: str = "features",
    sharding: jax.sharding.Sharding | None = None,
):
    """Yields ``feature_fn``'s output for each batch of ``images`` as a NumPy array.

    Args:
      feature_fn: a (jitted) function from a batch ``[batch_size, ...]`` to ``[batch_size, D]``.
      images: an array ``[N, ...]`` (NumPy or JAX), cut into batches here; or an iterable of
        batches ``[b, ...]`` with ``b <= batch_size`` (e.g. a generator that samples a model).
      batch_size: the compiled batch size; smaller batches are zero-padded up to it.
      progress: show a tqdm progress bar (images done).
      desc: the progress bar's label.
      sharding: if given, each padded batch is ``device_put`` with it.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batches, total = _batches(images, batch_size)
    with tqdm(total=total, unit="img", desc=desc, disable=not progress) as bar:
        for batch in batches:
            if not hasattr(batch, "shape"):
                batch = np.asarray(batch)
            n = batch.shape[0] if batch.ndim else 0
            if not 0 < n <= batch_size:
                raise ValueError(
                    f"each batch of images must hold 1 to batch_size={batch_size} items, got "
                    f"shape {batch.shape}"
                )
            padded = _pad(batch, batch_size)
            if sharding is not None:
                try:
                    sharding.shard_shape(padded.shape)
                except ValueError as err:
                    raise ValueError(
                        f"batch shape {padded.shape} cannot be laid out by sharding {sharding}: "
                        f"{err} (make batch_size a multiple of the device count)"
                    ) from err
                padded = jax.device_put(padded, sharding)
            out = np.asarray(feature_fn(padded))
            if out.ndim < 1 or out.shape[0] != batch_size:
                raise ValueError(
                    f"feature_fn must return one row per image, [{batch_size}, ...]; got shape "
                    f"{out.shape}"
                )
            bar.update(n)
            yield out[:n]


def extract_features(feature_fn: FeatureFn, images, **kwargs) -> np.ndarray:
    """All of ``feature_fn``'s outputs for ``images``, concatenated: ``[N, D]``.

    Keyword arguments are those of :func:`map_batches`.
    """
    return np.concatenate(list(map_batches(feature_fn, images, **kwargs)), axis=0)


def feature_stats(feature_fn: FeatureFn, images, **kwargs) -> FeatureStats:
    """Mean and covariance (float64) of ``feature_fn``'s features over ``images``, streamed
    batch by batch (memory ``O(D^2)``, not ``O(N D)``). Keyword arguments are those of
    :func:`map_batches`."""
    acc = StatsAccumulator()
    for features in map_batches(feature_fn, images, **kwargs):
        acc.update(features)
    return acc.result()
