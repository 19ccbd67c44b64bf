"""Multi-host training for real, on one machine: two JAX processes on 127.0.0.1 joined by
``jax.distributed.initialize`` (gloo CPU collectives), 2 CPU devices each, with the parameters
sharded over all four devices of both processes (``train.mesh`` fsdp=4), train to the same
parameters as one process with 4 devices and replicated parameters."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxdiff import train
from tests.train.util import TINY

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 150
# This check is about agreement, not speed: cheap LLVM compiles (a third of the default's
# time on CPU), the same in every process.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# train() joins the processes (config.train.distributed, JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES, JAX_PROCESS_ID) before anything touches a device; each process then
# dumps the final parameters, gathered from the shards of every process, and the shapes of
# its own shards.
WORKER = """
import json, sys
import jax
import numpy as np
from jax.experimental.multihost_utils import process_allgather
from jaxdiff import train
state = train.train(train.from_dict(json.loads(sys.argv[1])), sys.argv[2], progress=False)
leaves = jax.tree.leaves((state.params, state.ema_params))
np.savez(sys.argv[3], *process_allgather(leaves, tiled=True))
np.savez(sys.argv[3][:-4] + "_shards.npz",
         *[np.array([s.data.shape for s in x.addressable_shards]) for x in leaves])
print(json.dumps({"process_index": jax.process_index(), "process_count": jax.process_count(),
                  "device_count": jax.device_count(),
                  "local_device_count": jax.local_device_count()}))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(name: str, values: dict, workdir: pathlib.Path, tmp_path: pathlib.Path, *,
           local_devices: int, **env) -> subprocess.Popen:
    """Starts a worker whose output goes to ``tmp_path/name.{out,err}`` (no pipe to fill)."""
    environ = {k: v for k, v in os.environ.items()      # loopback only: no proxies, no
               if "_proxy" not in k.lower()             # inherited distributed settings
               and k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    environ.update(JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={local_devices} "
                             + FAST_COMPILE,
                   **env)
    with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(values), str(workdir),
             str(tmp_path / f"{name}.npz")], cwd=ROOT, env=environ, stdout=out, stderr=err)


def _wait_all(procs: dict[str, subprocess.Popen], tmp_path: pathlib.Path) -> dict[str, dict]:
    """Each worker's JSON line, once all have exited 0 within ``TIMEOUT_S`` in all."""
    deadline = time.monotonic() + TIMEOUT_S
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {TIMEOUT_S} s; stderr:\n"
                        + (tmp_path / f"{name}.err").read_text()[-4000:])
        if proc.returncode != 0:
            pytest.fail(f"{name} exited {proc.returncode}; stderr:\n"
                        + (tmp_path / f"{name}.err").read_text()[-4000:])
    return {name: json.loads((tmp_path / f"{name}.out").read_text().strip().splitlines()[-1])
            for name in procs}


def _leaves(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params))]


def test_two_processes_train_like_one(tmp_path):
    steps = 8
    values = {k: dict(v) for k, v in TINY.items()}
    # TINY with one UNet level (a third less to compile, thrice over) of 48 channels, whose
    # 3 x 3 x 48 x 48 kernels the fsdp rule shards, and a 2-step sampler.
    values["model"]["overrides"] = {**values["model"]["overrides"], "channel_mults": (1,),
                                    "base_channels": 48}
    values["train"].update(num_steps=steps, checkpoint_every=steps, log_every=4,
                           eval_every=steps, sample_steps=2)
    multi = {**values, "train": {**values["train"], "distributed": True,
                                 "mesh": {"data": 1, "fsdp": 4}}}
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = {}
    try:
        procs["single"] = _spawn("single", values, tmp_path / "single", tmp_path,
                                 local_devices=4)
        for i in range(2):
            procs[f"multi{i}"] = _spawn(
                f"multi{i}", multi, tmp_path / "multi", tmp_path, local_devices=2,
                JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i))
        outputs = _wait_all(procs, tmp_path)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert outputs["single"] == {"process_index": 0, "process_count": 1, "device_count": 4,
                                 "local_device_count": 4}
    for i in range(2):
        assert outputs[f"multi{i}"] == {"process_index": i, "process_count": 2,
                                        "device_count": 4, "local_device_count": 2}

    single, multi0, multi1 = (list(np.load(tmp_path / f"{name}.npz").values())
                              for name in ("single", "multi0", "multi1"))
    assert len(single) == len(multi0) == len(multi1) > 0
    for a, b in zip(multi0, multi1, strict=True):       # the processes agree exactly
        np.testing.assert_array_equal(a, b)
    # each process holds two of the four shards of a 3 x 3 x 48 x 48 kernel: 12 channels each
    shards = list(np.load(tmp_path / "multi0_shards.npz").values())
    as_tuples = [tuple(map(tuple, x)) for x in shards if x.ndim == 2 and x.shape[1] == 4]
    assert ((3, 3, 48, 12),) * 2 in as_tuples
    assert ((3, 3, 48, 48),) * 2 not in as_tuples       # none of them left whole
    # Close, not bit-identical: across processes the gradient reduction sums in another order.
    for a, b in zip(single, multi0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    # One set of files, written once: the multi-process checkpoint restores to the same state.
    assert sorted(p.name for p in (tmp_path / "multi" / "checkpoints").iterdir()
                  if p.name.isdigit()) == [str(steps)]
    restored = train.restore_workdir(tmp_path / "multi")[1]
    assert int(restored.step) == steps
    for a, b in zip(_leaves(restored), multi0, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "multi" / f"samples_{steps:07d}.png").exists()
