"""Batched feature extraction: padding, one compilation, iterables, sharding, progress."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff import metrics

_W = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)


def _linear_features(images):
    flat = images.reshape(images.shape[0], -1).astype(jnp.float32)
    return jnp.tanh(flat @ _W)


def _images(n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 2, 2, 3)).astype(np.float32)


def _reference(images):
    return np.tanh(images.reshape(images.shape[0], -1) @ _W)


def test_extract_features_pads_last_batch_and_compiles_once():
    fn = jax.jit(chex.assert_max_traces(_linear_features, n=1))
    images = _images(37)
    got = metrics.extract_features(fn, images, batch_size=8)
    assert got.shape == (37, 5)
    np.testing.assert_allclose(got, _reference(images), rtol=1e-5, atol=1e-6)
    # a JAX array input (e.g. samples on device) is padded on device, same result
    got_jax = metrics.extract_features(fn, jnp.asarray(images), batch_size=8)
    np.testing.assert_allclose(got_jax, got, rtol=1e-6)


def test_iterable_of_batches_and_too_large_batch():
    fn = jax.jit(_linear_features)
    images = _images(20)
    batches = (images[i : i + 6] for i in range(0, 20, 6))  # 6, 6, 6, 2
    got = metrics.extract_features(fn, batches, batch_size=6)
    np.testing.assert_allclose(got, _reference(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size=4"):
        metrics.extract_features(fn, iter([images[:6]]), batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        metrics.extract_features(fn, images, batch_size=0)
    with pytest.raises(ValueError, match="one row per image"):
        metrics.extract_features(lambda x: x[:1], images, batch_size=4)


def test_sharded_extraction_equals_single_device():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py should give 8 simulated CPU devices"
    mesh = jax.make_mesh((8,), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    fn = jax.jit(_linear_features)
    images = _images(50)
    got = metrics.extract_features(fn, images, batch_size=16, sharding=sharding)
    np.testing.assert_allclose(got, _reference(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of the device count"):
        metrics.extract_features(fn, images, batch_size=12, sharding=sharding)


def test_progress_bar_counts_images(capsys):
    fn = jax.jit(_linear_features)
    images = _images(23)
    got = metrics.extract_features(fn, images, batch_size=10, progress=True, desc="feats")
    np.testing.assert_allclose(got, _reference(images), rtol=1e-5, atol=1e-6)
    err = capsys.readouterr().err
    assert "feats" in err and "23/23" in err


def test_feature_stats_streams_to_the_same_statistics():
    fn = jax.jit(_linear_features)
    images = _images(101)
    got = metrics.feature_stats(fn, images, batch_size=16)
    want = metrics.stats_from_features(metrics.extract_features(fn, images, batch_size=16))
    assert got.num == 101
    np.testing.assert_allclose(got.mu, want.mu, rtol=1e-10)
    np.testing.assert_allclose(got.sigma, want.sigma, rtol=1e-9, atol=1e-12)
    assert abs(metrics.fid_from_stats(got, want)) < 1e-9


def test_bad_images_argument():
    fn = jax.jit(_linear_features)
    with pytest.raises(ValueError, match="images must be"):
        metrics.extract_features(fn, 3, batch_size=4)
    with pytest.raises(ValueError, match="images must be a non-empty"):
        metrics.extract_features(fn, np.zeros((0, 2, 2, 3)), batch_size=4)
