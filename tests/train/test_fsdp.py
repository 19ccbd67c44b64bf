"""Fully sharded data parallelism on the 8 simulated devices: a (data=2, fsdp=4) run trains
like the replicated run, each device stores about a quarter of the state, and its checkpoints
restore onto another mesh (and onto one device) exactly."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxdiff import data, train
from jaxdiff.train import loop
from jaxdiff.train.sharding import MIN_SHARDED_SIZE, bytes_per_device, fsdp_spec
from tests.train.util import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 20
# 8x8 digits, one level of 64 channels: 94% of the parameters are in kernels of >= 2**14
# elements, which the rule shards
FSDP_UNET = {"preset": "unet_tiny",
             "overrides": {"base_channels": 64, "channel_mults": (1,), "num_res_blocks": 1,
                           "attention_levels": (), "num_groups": 8}}
FSDP = {"data": 2, "fsdp": 4}


def _config(mesh: dict, **train_fields) -> train.ExperimentConfig:
    fields = {"num_steps": STEPS, "checkpoint_every": 10, "log_every": 1, "eval_every": STEPS,
              "sample_steps": 2, "mesh": mesh, **train_fields}
    return tiny_config(model=FSDP_UNET, train=fields)


def _losses(workdir) -> list[float]:
    return [row["loss"] for row in train.read_metrics(workdir) if "loss" in row]


def _state_leaves(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(
        (state.step, state.params, state.opt_state, state.ema_params))]


def _conv_kernel(state) -> jax.Array:
    """The first residual block's (3, 3, 64, 64) input convolution kernel."""
    return state.params["down"][0]["blocks"][0]["residual"]["input_conv"]["kernel"][...]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The replicated (data=8) and the sharded (data=2, fsdp=4) run, 20 steps each."""
    root = tmp_path_factory.mktemp("fsdp")
    states = {name: train.train(_config(mesh), root / name, progress=False)
              for name, mesh in (("replicated", {"data": -1}), ("sharded", FSDP))}
    return root, states


def test_fsdp_spec_shards_the_largest_divisible_dimension():
    assert fsdp_spec((3, 3, 64, 128), 4) == P(None, None, None, "fsdp")
    assert fsdp_spec((3, 3, 128, 128), 4) == P(None, None, None, "fsdp")   # last of equals
    assert fsdp_spec((257, 256), 4) == P(None, "fsdp")   # 257 is larger, but 4 does not divide it
    assert fsdp_spec((128,), 4) == P()                   # small: replicated
    assert fsdp_spec((MIN_SHARDED_SIZE,), 4) == P("fsdp")
    assert fsdp_spec((MIN_SHARDED_SIZE - 1,), 1) == P()
    assert fsdp_spec((3, 3, 64, 128), 1) == P()          # no fsdp axis: replicated
    with pytest.raises(ValueError, match=r"fsdp=8 divides no dimension.*\(3, 3, 60, 60\)"):
        fsdp_spec((3, 3, 60, 60), 8)


def test_sharded_run_trains_like_the_replicated_run(runs):
    root, states = runs
    replicated, sharded = _losses(root / "replicated"), _losses(root / "sharded")
    assert len(replicated) == len(sharded) == STEPS
    np.testing.assert_allclose(sharded, replicated, rtol=1e-5, atol=1e-6)
    for a, b in zip(_state_leaves(states["sharded"]), _state_leaves(states["replicated"]),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_sharded_run_stores_a_quarter_of_the_state_per_device(runs):
    _, states = runs
    sharded, replicated = ({device: count for device, count in
                            bytes_per_device((s.params, s.opt_state, s.ema_params)).items()}
                           for s in (states["sharded"], states["replicated"]))
    assert len(sharded) == len(replicated) == 8
    total = sum(np.asarray(x).nbytes for x in jax.tree.leaves(
        (states["replicated"].params, states["replicated"].opt_state,
         states["replicated"].ema_params)))
    assert set(replicated.values()) == {total}           # every device holds all of it
    assert len(set(sharded.values())) == 1               # the shards are even
    # a quarter of each array the rule shards, all of the others
    expected = sum(x.nbytes // 4 if x.size >= MIN_SHARDED_SIZE else x.nbytes
                   for x in map(np.asarray, jax.tree.leaves(
                       (states["replicated"].params, states["replicated"].opt_state,
                        states["replicated"].ema_params))))
    assert next(iter(sharded.values())) == expected
    # 0.294: 1/4 plus the replicated small arrays (norms, biases, the mid-block attention's
    # 64 x 192 projection)
    assert expected / total < 0.3
    kernel = _conv_kernel(states["sharded"])
    assert kernel.sharding.spec == P(None, None, None, "fsdp")
    assert kernel.addressable_shards[0].data.shape == (3, 3, 64, 16)


def test_checkpoint_restores_onto_another_mesh_and_continues_bit_identically(runs, tmp_path):
    """Saved at step 10 on (data=2, fsdp=4), resumed on (data=4, fsdp=2): the same state as
    ten steps on the first mesh followed, in memory, by ten on the second."""
    root, _ = runs
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(root / "sharded", resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / str(STEPS))
    other = {"data": 4, "fsdp": 2}
    resumed = train.train(_config(other), resumed_dir, progress=False)

    state = None
    for mesh, start in ((FSDP, 0), (other, 10)):
        run = loop.build_run(_config(mesh))
        state, shardings = loop.placed(run, loop.initial_state(run) if state is None else state)
        step = loop.compiled_train_step(run, shardings)
        batches = loop.train_batches(run, start_step=start)
        for _ in range(10):
            state, _ = step(state, data.global_batch(next(batches), run.mesh))
    assert _conv_kernel(resumed).addressable_shards[0].data.shape == (3, 3, 64, 32)
    for a, b in zip(_state_leaves(resumed), _state_leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)


RESTORE_ON_ONE_DEVICE = """
import sys
import jax
import numpy as np
from jaxdiff import train
assert jax.device_count() == 1
_, state = train.restore_workdir(sys.argv[1])
leaves = jax.tree.leaves((state.step, state.params, state.opt_state, state.ema_params))
np.savez(sys.argv[2], *[np.asarray(x) for x in leaves])
"""


def test_sharded_checkpoint_restores_on_one_device(runs, tmp_path):
    root, states = runs
    environ = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    out = tmp_path / "restored.npz"
    subprocess.run([sys.executable, "-c", RESTORE_ON_ONE_DEVICE, str(root / "sharded"),
                    str(out)], cwd=ROOT, env=environ, check=True, timeout=300)
    restored = list(np.load(out).values())
    expected = _state_leaves(states["sharded"])
    assert len(restored) == len(expected)
    for a, b in zip(restored, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mesh, match", [
    ({"data": 2, "fsdp": 2}, r"train\.mesh.*4 devices, but there are 8"),
    ({"data": -1, "fsdp": 3}, r"train\.mesh.*8 devices are not divisible by 3"),
    ({"data": -1, "fsdp": -1}, r"train\.mesh.*at most one mesh axis may be -1"),
    ({"data": -1, "tensor": 2}, r"train\.mesh.*'tensor' is not one of \('data', 'fsdp'\)"),
    ({"data": 0}, r"train\.mesh.*'data' must be an int >= 1 or -1"),
])
def test_bad_meshes_are_named(mesh, match):
    with pytest.raises(ValueError, match=match):
        train.validate(_config(mesh), num_devices=8)


def test_fsdp_axis_that_divides_no_dimension_of_a_sharded_parameter_is_named():
    config = tiny_config(model={"preset": "unet_tiny",
                                "overrides": {"base_channels": 60, "channel_mults": (1,),
                                              "num_res_blocks": 1, "attention_levels": (),
                                              "num_groups": 4}},
                         train={"mesh": {"data": 1, "fsdp": 8}})
    with pytest.raises(ValueError, match=r"train\.mesh.*params\[.*kernel.*fsdp=8 divides no "
                                         r"dimension.*\(3, 3, 60, 60\)"):
        loop.build_run(config)


def test_mesh_is_recorded_and_read_back(runs):
    root, _ = runs
    recorded = json.loads((root / "sharded" / "config.json").read_text())
    assert recorded["train"]["mesh"] == FSDP
    assert train.load_config(root / "sharded").train.mesh == FSDP
