"""Deterministic, resumable shuffling batches over an :class:`ArrayDataset`.

The batches of one run are slices of an endless *stream*: the concatenation of one random
permutation of the dataset per epoch, epoch ``e``'s permutation drawn from
``np.random.default_rng([seed, e])``. Batch ``step`` is the global stream window
``[step * B, (step + 1) * B)``. So

- each epoch covers every example exactly once, and no example is dropped (a batch may
  straddle two epochs; every batch has the same shape, so nothing recompiles);
- the whole iterator position is the integer ``step``: save it in the checkpoint, and
  ``batches(..., start_step=step)`` yields exactly the batches an uninterrupted run would;
- with several processes, every process computes the same global window and keeps its own
  contiguous ``B / process_count`` rows, ready for :func:`jaxdiff.data.global_batch`.

Reproducing a run exactly needs the same NumPy major version (NumPy's ``Generator``
permutation algorithm is only guaranteed stable within one).
"""

from collections.abc import Iterator
from typing import NamedTuple

import jax
import numpy as np

from jaxdiff.data.arrays import ArrayDataset


class Position(NamedTuple):
    """Where batch ``step`` starts in the stream: ``epoch`` and ``index`` within it."""

    epoch: int
    index: int


def position(step: int, *, batch_size: int, num_examples: int) -> Position:
    """The epoch and in-epoch index at which batch ``step`` starts."""
    start = step * batch_size
    return Position(start // num_examples, start % num_examples)


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the ``num_examples`` examples."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _check(dataset, batch_size, seed, step, process_index, process_count):
    if not isinstance(dataset, ArrayDataset):
        raise TypeError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(step, int | np.integer) or step < 0:
        raise ValueError(f"start_step must be a non-negative int, got {step!r}")
    check_process_slot(process_index, process_count, batch_size)


def check_process_slot(process_index, process_count, batch_size: int) -> None:
    """This process's slot ``(process_index, process_count)`` of a global ``batch_size``."""
    if not isinstance(process_count, int) or process_count < 1:
        raise ValueError(f"process_count must be a positive int, got {process_count!r}")
    if not isinstance(process_index, int) or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be an int in [0, {process_count}), "
                         f"got {process_index!r}")
    if batch_size % process_count:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by process_count "
                         f"({process_count})")


def batches(dataset: ArrayDataset, *, batch_size: int, seed: int, start_step: int = 0,
            process_index: int | None = None, process_count: int | None = None,
            ) -> Iterator[dict[str, np.ndarray]]:
    """Yields this process's part of global batches ``start_step, start_step + 1, ...``.

    Args:
      dataset: the examples to iterate over, endlessly.
      batch_size: the *global* batch size ``B``, divisible by ``process_count``.
      seed: the shuffling seed; the same seed gives the same batches.
      start_step: the first batch to yield (resume from a checkpointed step).
      process_index, process_count: this process's slot (default: ``jax.process_index()``
        and ``jax.process_count()``).

    Yields:
      ``{"image": float32[B / P, H, W, C], "label": int32[B / P]}`` (host NumPy arrays),
      and ``"noise"`` (the images' shape) when the dataset has coupled noise.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    _check(dataset, batch_size, seed, start_step, process_index, process_count)
    n = len(dataset)
    local = batch_size // process_count
    lo = process_index * local
    cached_epoch, perm = -1, None
    step = int(start_step)
    while True:
        # This process's rows of the global window [step * B + lo, step * B + lo + local).
        start = step * batch_size + lo
        parts, remaining = [], local
        while remaining:
            epoch, index = divmod(start, n)
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, epoch_permutation(int(seed), epoch, n)
            take = min(remaining, n - index)
            parts.append(perm[index:index + take])
            start, remaining = start + take, remaining - take
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        batch = {"image": dataset.images[rows], "label": dataset.labels[rows]}
        if dataset.noise is not None:
            batch["noise"] = dataset.noise[rows]
        yield batch
        step += 1
