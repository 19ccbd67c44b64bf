"""Gradient accumulation (``train.microbatches``): k micro-steps of B / k rows are one step of
B rows, in one compiled program, on one device and on 8 with the batch sharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import data, train
from jaxdiff.train.step import make_train_step, microbatched
from tests.train.util import tiny_config

D = 5


def _regression_loss(params, key, batch):
    """A loss without randomness (the key is unused), so every split gives the same mean."""
    del key
    hidden = jnp.tanh(batch["x"] @ params["w"] + params["b"][None, :])
    return jnp.sum((hidden - batch["y"]) ** 2, axis=-1)


def _setup(rows=64, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": jnp.asarray(rng.normal(size=(D, 3)), jnp.float32),
              "b": jnp.zeros(3, jnp.float32)}
    batch = {"x": jnp.asarray(rng.normal(size=(rows, D)), jnp.float32),
             "y": jnp.asarray(rng.normal(size=(rows, 3)), jnp.float32)}
    optimizer = train.make_optimizer(learning_rate=1e-2, total_steps=10)
    return params, batch, optimizer


def _steps(microbatches, params, batch, optimizer, count=3):
    state = train.create_train_state(params, optimizer, jax.random.key(0))
    step = jax.jit(make_train_step(_regression_loss, optimizer, ema_decay=0.9,
                                   microbatches=microbatches))
    losses = []
    for _ in range(count):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    return state, losses


@pytest.mark.parametrize("microbatches", [2, 4])
def test_k_micro_steps_equal_one_step_of_the_whole_batch(microbatches):
    params, batch, optimizer = _setup()
    whole, whole_losses = _steps(1, params, batch, optimizer)
    split, split_losses = _steps(microbatches, params, batch, optimizer)
    np.testing.assert_allclose(split_losses, whole_losses, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(split.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_micro_steps_are_one_scan_in_one_program():
    params, batch, optimizer = _setup()
    state = train.create_train_state(params, optimizer, jax.random.key(0))
    jaxpr = str(jax.make_jaxpr(make_train_step(_regression_loss, optimizer, ema_decay=0.9,
                                               microbatches=4))(state, batch))
    assert jaxpr.count("scan[") == 1 and "length=4" in jaxpr


def test_micro_batches_take_strided_rows_so_each_device_keeps_its_share():
    rows = jnp.arange(16)
    split = microbatched({"x": rows}, 4)["x"]
    np.testing.assert_array_equal(split[1], [1, 5, 9, 13])
    with pytest.raises(ValueError, match="not divisible by microbatches=3"):
        microbatched({"x": rows}, 3)


def test_accumulation_on_eight_devices_equals_one_device():
    params, batch, optimizer = _setup(rows=64, seed=1)
    mesh = data.data_mesh()
    sharded = jax.device_put(batch, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(data.DATA_AXIS)))
    one, _ = _steps(1, params, batch, optimizer)
    eight, _ = _steps(4, params, sharded, optimizer)
    for a, b in zip(jax.tree.leaves(eight.params), jax.tree.leaves(one.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("microbatches, match", [
    (3, "train.microbatches: 3 micro-batches of the batch of 16"),
    (0, "train.microbatches: must be an int >= 1, got 0")])
def test_bad_microbatches_are_named_before_compilation(microbatches, match):
    config = tiny_config(train={"batch_size": 16, "microbatches": microbatches})
    with pytest.raises(ValueError, match=match):
        train.validate(config, num_devices=1)
    with pytest.raises(ValueError, match="devices"):
        train.validate(tiny_config(train={"batch_size": 16, "microbatches": 4}),
                       num_devices=8)


def test_a_run_trains_with_microbatches(tmp_path):
    config = tiny_config(train={"num_steps": 2, "eval_every": 2, "microbatches": 2})
    state = train.train(config, tmp_path, progress=False)
    assert int(state.step) == 2
    assert all(np.isfinite(row["loss"]) for row in train.read_metrics(tmp_path)
               if "loss" in row)
