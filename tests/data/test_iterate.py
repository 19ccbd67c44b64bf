"""Shuffling batches: determinism, epoch coverage, exact resume, process slices."""

import itertools

import numpy as np
import pytest

from jaxdiff import data


def make_dataset(n=23):
    images = (np.arange(n, dtype=np.float32) / 1000).reshape(n, 1, 1, 1)   # id / 1000
    return data.ArrayDataset(images, np.arange(n, dtype=np.int32) % 3, num_classes=3)


def take(it, k):
    return list(itertools.islice(it, k))


def ids(batch):
    return np.rint(batch["image"].reshape(-1) * 1000).astype(np.int64)


def test_same_seed_same_batches_other_seed_differs():
    ds = make_dataset()
    a = [ids(b) for b in take(data.batches(ds, batch_size=5, seed=3), 10)]
    b = [ids(b) for b in take(data.batches(ds, batch_size=5, seed=3), 10)]
    c = [ids(b) for b in take(data.batches(ds, batch_size=5, seed=4), 10)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_each_epoch_covers_every_example_once():
    n, bsz, epochs = 23, 5, 5  # 23 * 5 = 115 = 23 batches of 5; batches straddle epochs
    batches = take(data.batches(make_dataset(n), batch_size=bsz, seed=0), n * epochs // bsz)
    stream = np.concatenate([ids(b) for b in batches])
    assert all(b["image"].shape == (bsz, 1, 1, 1) for b in batches)
    for e in range(epochs):
        np.testing.assert_array_equal(np.sort(stream[e * n:(e + 1) * n]), np.arange(n))
        np.testing.assert_array_equal(stream[e * n:(e + 1) * n],
                                      data.epoch_permutation(0, e, n))
    assert not np.array_equal(stream[:n], stream[n:2 * n])  # reshuffled each epoch


def test_labels_follow_images():
    batch = next(data.batches(make_dataset(), batch_size=7, seed=1))
    np.testing.assert_array_equal(batch["label"], ids(batch) % 3)
    assert batch["label"].dtype == np.int32 and batch["image"].dtype == np.float32


@pytest.mark.parametrize("k", [0, 1, 4, 5, 13])
def test_resume_at_step_equals_uninterrupted(k):
    ds = make_dataset()
    full = [ids(b) for b in take(data.batches(ds, batch_size=5, seed=7), 20)]
    resumed = [ids(b) for b in take(data.batches(ds, batch_size=5, seed=7, start_step=k), 20 - k)]
    np.testing.assert_array_equal(np.stack(full[k:]), np.stack(resumed))


def test_position():
    assert data.position(13, batch_size=5, num_examples=23) == data.Position(2, 19)
    assert data.position(0, batch_size=5, num_examples=23) == (0, 0)


def test_process_slices_tile_global_batch():
    ds = make_dataset()
    whole = take(data.batches(ds, batch_size=8, seed=2, process_index=0, process_count=1), 6)
    parts = [take(data.batches(ds, batch_size=8, seed=2, process_index=p, process_count=4), 6)
             for p in range(4)]
    for s in range(6):
        np.testing.assert_array_equal(ids(whole[s]), np.concatenate([ids(p[s]) for p in parts]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0, seed=0), "batch_size"),
    (dict(batch_size=4, seed=-1), "seed"),
    (dict(batch_size=4, seed=0, start_step=-2), "start_step"),
    (dict(batch_size=6, seed=0, process_index=0, process_count=4), "divisible by process_count"),
    (dict(batch_size=8, seed=0, process_index=4, process_count=4), "process_index"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(data.batches(make_dataset(), **kwargs))
    with pytest.raises(TypeError, match="dataset must be an ArrayDataset"):
        next(data.batches(np.zeros((4, 1)), batch_size=2, seed=0))
