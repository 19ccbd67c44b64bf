"""Process-local host batches -> global ``jax.Array`` batches sharded over a data mesh."""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh ``jax.make_mesh((n,), ("data",))`` over the first ``n`` devices (all).

    The axis is ``AxisType.Auto``: batches are sharded on it and XLA propagates the
    sharding through the step, so any model code (gathers, ``where`` with replicated
    constants) runs data-parallel unchanged. (``make_mesh``'s default, ``Explicit``, would
    ask every such op for an output sharding.)
    """
    total = jax.device_count()
    n = total if num_devices is None else num_devices
    if not isinstance(n, int) or not 1 <= n <= total:
        raise ValueError(f"num_devices must be an int in [1, {total}], got {num_devices!r}")
    return jax.make_mesh((n,), (DATA_AXIS,), devices=jax.devices()[:n],
                         axis_types=(jax.sharding.AxisType.Auto,))


def global_batch(local_batch, mesh: jax.sharding.Mesh):
    """Assembles every process's ``local_batch`` into global arrays sharded on "data".

    Each leaf of the pytree ``local_batch`` is this process's rows ``[B / P, ...]``; the
    result's leaves are ``jax.Array`` of shape ``[B, ...]``, split along the batch axis over
    the mesh's "data" axis (``jax.make_array_from_process_local_data``).
    """
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, has {mesh.axis_names}")
    num_shards = mesh.shape[DATA_AXIS]
    local_shards = num_shards // jax.process_count()

    def put(path, x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] % max(local_shards, 1):
            raise ValueError(
                f"local_batch{jax.tree_util.keystr(path)} must have a leading batch axis "
                f"divisible by this process's {local_shards} data shards, got shape {x.shape}")
        sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS, *([None] * (x.ndim - 1))))
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(put, local_batch)
