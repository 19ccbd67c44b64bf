"""Device meshes and process-local host batches -> global ``jax.Array`` batches on them.

A training mesh has two axes, ``("data", "fsdp")``: the batch is split over both (every
device holds ``B / n`` rows), and :mod:`jaxdiff.train.sharding` splits the large parameters
and their optimizer state over "fsdp". With ``fsdp = 1`` it is plain data parallelism.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
# the mesh axes a batch is split over, in this order, where the mesh has them
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)


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


def mesh_shape(axes: dict, num_devices: int) -> dict[str, int]:
    """``{"data": d, "fsdp": f}`` with ``d * f == num_devices`` from ``axes``, a dict of
    those names to sizes where one size may be -1 (the devices left over) and a name left
    out is 1: ``{"data": -1, "fsdp": 4}`` on 8 devices is ``{"data": 2, "fsdp": 4}``.

    Raises:
      ValueError: naming the axis, for another name, a size that is not an int >= 1 or -1,
        two -1s, or sizes whose product is not ``num_devices``.
    """
    if not isinstance(axes, dict):
        raise ValueError(f"the mesh must be a dict of {BATCH_AXES} to sizes, got {axes!r}")
    for name, size in axes.items():
        if name not in BATCH_AXES:
            raise ValueError(f"mesh axis {name!r} is not one of {BATCH_AXES}")
        if isinstance(size, bool) or not isinstance(size, int) or not (size >= 1 or size == -1):
            raise ValueError(f"mesh axis {name!r} must be an int >= 1 or -1 (the devices left "
                             f"over), got {size!r}")
    sizes = {name: axes.get(name, 1) for name in BATCH_AXES}
    free = [name for name, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {axes}")
    fixed = int(np.prod([size for size in sizes.values() if size != -1]))
    if free:
        if num_devices % fixed:
            raise ValueError(f"mesh {axes}: {num_devices} devices are not divisible by "
                             f"{fixed}, the product of the other axes")
        sizes[free[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ValueError(f"mesh {axes} has {fixed} devices, but there are {num_devices} "
                         f"(the product of the axes must be the device count; -1 takes the "
                         f"rest)")
    return sizes


def device_mesh(axes: dict | None = None) -> jax.sharding.Mesh:
    """The 2-D ``("data", "fsdp")`` mesh of every device, sized by :func:`mesh_shape`
    (default: ``{"data": -1}``, all devices data-parallel); ``AxisType.Auto`` as in
    :func:`data_mesh`. ``jax.make_mesh`` orders the devices so that each process holds
    whole rows of the batch."""
    sizes = mesh_shape({DATA_AXIS: -1} if axes is None else axes, jax.device_count())
    return jax.make_mesh(tuple(sizes.values()), tuple(sizes),
                         axis_types=(jax.sharding.AxisType.Auto,) * len(sizes))


def batch_spec(mesh: jax.sharding.Mesh, ndim: int) -> PartitionSpec:
    """An array of ``ndim`` dimensions split on its first over the mesh's batch axes."""
    axes = tuple(name for name in BATCH_AXES if name in mesh.axis_names)
    return PartitionSpec(axes, *([None] * (ndim - 1)))


def global_batch(local_batch, mesh: jax.sharding.Mesh):
    """Assembles every process's ``local_batch`` into global arrays sharded over the mesh's
    batch axes ("data", and "fsdp" where it has one).

    Each leaf of the pytree ``local_batch`` is this process's rows ``[B / P, ...]``; the
    result's leaves are ``jax.Array`` of shape ``[B, ...]``, split along the batch axis over
    those axes' devices (``jax.make_array_from_process_local_data``).
    """
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, has {mesh.axis_names}")
    num_shards = int(np.prod([mesh.shape[name] for name in BATCH_AXES
                              if name in mesh.axis_names]))
    local_shards = num_shards // jax.process_count()

    def put(path, x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] % max(local_shards, 1):
            raise ValueError(
                f"local_batch{jax.tree_util.keystr(path)} must have a leading batch axis "
                f"divisible by this process's {local_shards} data shards, got shape {x.shape}")
        sharding = NamedSharding(mesh, batch_spec(mesh, x.ndim))
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(put, local_batch)
