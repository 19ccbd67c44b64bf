"""The train step: EMA, the optimizer's schedule, and data parallelism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxdiff import data, train
from tests.train.util import tiny_config


def test_ema_update():
    ema = {"w": jnp.array([1.0, 2.0])}
    out = train.ema_update(ema, {"w": jnp.array([3.0, 0.0])}, 0.9)
    np.testing.assert_allclose(np.asarray(out["w"]), [1.2, 1.8], rtol=1e-6)


def test_optimizer_warms_up_then_decays_by_a_cosine():
    opt = train.make_optimizer(learning_rate=1.0, total_steps=100, warmup_steps=10,
                               clip_norm=None)
    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    seen = []
    for _ in range(100):
        # Adam's first update has magnitude lr for any gradient sign: read the rate off it.
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        seen.append(-float(updates["w"]))
    assert seen[0] == pytest.approx(0.0, abs=1e-6)
    assert seen[5] == pytest.approx(0.5, rel=1e-3)
    expected_55 = 0.5 * (1 + np.cos(np.pi * 45 / 90))
    assert seen[55] == pytest.approx(expected_55, rel=1e-3)


def _run_steps(num_devices: int, steps: int = 20):
    run = train.build_run(tiny_config())
    mesh = data.data_mesh(num_devices)
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(train.initial_state(run), replicated)
    step = jax.jit(train.make_train_step(train.loop.loss_fn_for(run, train=True), run.optimizer,
                                         ema_decay=0.9), out_shardings=(replicated, replicated))
    batches = data.batches(run.dataset, batch_size=16, seed=0)
    for _ in range(steps):
        state, _ = step(state, data.global_batch(next(batches), mesh))
    return state


def test_eight_devices_train_like_one():
    one, eight = _run_steps(1), _run_steps(8)
    assert jax.tree.leaves(eight.params)[0].sharding.num_devices == 8
    for a, b in zip(jax.tree.leaves((one.params, one.ema_params)),
                    jax.tree.leaves((eight.params, eight.ema_params)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
