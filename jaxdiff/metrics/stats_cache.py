"""Reference feature statistics, computed once per (dataset, split, feature extractor).

FID compares a model's samples with fixed statistics of the data. Those are computed once,
stored as ``.npz`` (``mu``, ``sigma``, ``num`` and the key that made them) at
``<cache_dir>/<extractor>/<dataset>/<split>.npz`` and loaded afterwards::

    stats = cached_reference_stats(
        lambda: feature_stats(feature_fn, test_images, batch_size=200),
        dataset="digits", split="test", extractor=INCEPTION_EXTRACTOR)

``cache_dir`` defaults to ``<cache>/fid_stats`` (see :mod:`jaxdiff.metrics.paths`). The
extractor name is part of the key: give a classifier's features a name that changes whenever
its weights do.
"""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxdiff.metrics.frechet import FeatureStats
from jaxdiff.metrics.paths import atomic_write_npz, check_key, default_cache_dir

INCEPTION_EXTRACTOR = "inception-2015-12-05"


def reference_stats_path(
    *, dataset: str, split: str, extractor: str, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Where the statistics for this key live (the file need not exist)."""
    root = (
        Path(cache_dir).expanduser()
        if cache_dir is not None
        else (default_cache_dir() / "fid_stats")
    )
    return (
        root
        / check_key(extractor, "extractor")
        / check_key(dataset, "dataset")
        / f"{check_key(split, 'split')}.npz"
    )


def save_stats(path: str | os.PathLike, stats: FeatureStats, **key: str) -> Path:
    """Writes ``stats`` (and the strings in ``key``, e.g. ``dataset=...``) to ``path``."""
    if not isinstance(stats, FeatureStats):
        raise ValueError(f"stats must be a FeatureStats, got {type(stats).__name__}")
    arrays = {
        "mu": np.asarray(stats.mu, np.float64),
        "sigma": np.asarray(stats.sigma, np.float64),
        "num": np.asarray(stats.num, np.int64),
    }
    arrays |= {f"key_{name}": np.array(value) for name, value in key.items()}
    return atomic_write_npz(Path(path), arrays)


def load_stats(path: str | os.PathLike, **expected_key: str) -> FeatureStats:
    """Reads statistics written by :func:`save_stats`; each ``expected_key`` item must match
    what was stored (guards against a file moved or renamed by hand)."""
    with np.load(Path(path), allow_pickle=False) as npz:
        for name, value in expected_key.items():
            stored = str(npz[f"key_{name}"]) if f"key_{name}" in npz.files else None
            if stored != value:
                raise ValueError(f"{path} holds statistics for {name}={stored!r}, not {value!r}")
        mu, sigma, num = npz["mu"], npz["sigma"], int(npz["num"])
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    return FeatureStats(mu, sigma, num)


def cached_reference_stats(
    compute_fn: Callable[[], FeatureStats],
    *,
    dataset: str,
    split: str,
    extractor: str,
    cache_dir: str | os.PathLike | None = None,
    recompute: bool = False,
) -> FeatureStats:
    """Loads the statistics for (dataset, split, extractor), or computes them with
    ``compute_fn()`` and stores them first (also when ``recompute``)."""
    key = {"dataset": dataset, "split": split, "extractor": extractor}
    path = reference_stats_path(cache_dir=cache_dir, **key)
    if path.is_file() and not recompute:
        return load_stats(path, **key)
    stats = compute_fn()
    save_stats(path, stats, **key)
    return stats
