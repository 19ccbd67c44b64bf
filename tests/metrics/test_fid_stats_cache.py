"""Reference statistics cache and the cache-location settings."""

import numpy as np
import pytest

from jaxdiff import metrics


def _stats(seed):
    feats = np.random.default_rng(seed).normal(size=(50, 6))
    return metrics.stats_from_features(feats)


def test_computes_once_then_loads(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return _stats(0)

    key = dict(dataset="digits", split="test", extractor="inception-2015-12-05")
    first = metrics.cached_reference_stats(compute, cache_dir=tmp_path, **key)
    second = metrics.cached_reference_stats(compute, cache_dir=tmp_path, **key)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.mu, second.mu)
    np.testing.assert_array_equal(first.sigma, second.sigma)
    assert first.num == second.num == 50
    assert metrics.reference_stats_path(cache_dir=tmp_path, **key) == (
        tmp_path / "inception-2015-12-05" / "digits" / "test.npz"
    )
    # another split is another entry; recompute overwrites
    metrics.cached_reference_stats(
        lambda: _stats(1), cache_dir=tmp_path, **{**key, "split": "train"}
    )
    assert (tmp_path / "inception-2015-12-05" / "digits" / "train.npz").is_file()
    redone = metrics.cached_reference_stats(
        lambda: _stats(2), cache_dir=tmp_path, recompute=True, **key
    )
    np.testing.assert_array_equal(redone.mu, _stats(2).mu)


def test_keys_are_checked(tmp_path):
    with pytest.raises(ValueError, match="dataset must be"):
        metrics.reference_stats_path(dataset="../etc", split="test", extractor="x")
    path = metrics.save_stats(tmp_path / "s.npz", _stats(0), dataset="digits", split="test")
    with pytest.raises(ValueError, match="split='test', not 'train'"):
        metrics.load_stats(path, dataset="digits", split="train")
    with pytest.raises(ValueError, match="stats must be a FeatureStats"):
        metrics.save_stats(tmp_path / "t.npz", (np.zeros(2), np.eye(2), 3))


def test_cache_locations_follow_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(metrics.WEIGHTS_ENV, raising=False)
    assert metrics.reference_stats_path(dataset="d", split="s", extractor="e") == (
        tmp_path / "cache" / "fid_stats" / "e" / "d" / "s.npz"
    )
    assert metrics.default_inception_weights_path() == (
        tmp_path / "cache" / "inception" / "inception-2015-12-05-fid.npz"
    )
