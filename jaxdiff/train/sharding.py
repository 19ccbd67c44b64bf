"""Where the train state lives on a ``("data", "fsdp")`` mesh: fully sharded data parallelism.

Every array of the state (parameters, EMA, power-function EMAs, the optimizer's moments) is
placed by one rule on its shape, so no model needs a list of its parameters: an array of at
least ``min_size`` elements is split over the "fsdp" devices along its largest dimension that
the axis divides (the last of equals: a convolution's output channels, a dense layer's
outputs), and a smaller one (biases, norms, step counters) is replicated. The optimizer's
moments have their parameter's shape, so they fall where it does. Each device then stores
about ``1 / fsdp`` of the state (ZeRO-3, Rajbhandari et al. 2020; the rule is big_vision's
``fsdp`` sharding rule, except that a large array no dimension of which divides is an error,
not silently replicated). XLA gathers the parameters where the step uses them and
reduce-scatters the gradients, from the shardings alone (``AxisType.Auto``).
"""

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxdiff.data.sharding import FSDP_AXIS
from jaxdiff.typing import PyTree

# arrays smaller than this (64 KiB in float32) are replicated: their gathers would cost more
# latency than their memory is worth
MIN_SHARDED_SIZE = 2**14


def fsdp_spec(shape: tuple[int, ...], fsdp: int, *,
              min_size: int = MIN_SHARDED_SIZE) -> PartitionSpec:
    """The ``PartitionSpec`` of an array of ``shape`` on a mesh with ``fsdp`` devices on
    "fsdp": replicated (``P()``) if ``fsdp == 1`` or it has fewer than ``min_size`` elements,
    else split on its largest dimension divisible by ``fsdp`` (the last of equals).

    Raises:
      ValueError: when the array is sharded by the rule but ``fsdp`` divides none of its
        dimensions.
    """
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return PartitionSpec()
    divisible = [d for d, size in enumerate(shape) if size % fsdp == 0]
    if not divisible:
        raise ValueError(f"fsdp={fsdp} divides no dimension of an array of shape "
                         f"{tuple(shape)} that the rule shards (>= {min_size} elements)")
    axis = max(divisible, key=lambda d: (shape[d], d))
    return PartitionSpec(*([None] * axis), FSDP_AXIS)


def state_sharding(tree: PyTree, mesh: jax.sharding.Mesh, *,
                   min_size: int = MIN_SHARDED_SIZE) -> PyTree:
    """``NamedSharding`` of every leaf of ``tree`` (arrays or ``ShapeDtypeStruct``) on
    ``mesh`` by :func:`fsdp_spec`; all replicated when the mesh has no "fsdp" axis.

    Raises:
      ValueError: naming the leaf (its path in ``tree``) that the rule cannot shard.
    """
    fsdp = mesh.shape.get(FSDP_AXIS, 1)

    def place(path, leaf):
        try:
            spec = fsdp_spec(tuple(leaf.shape), fsdp, min_size=min_size)
        except ValueError as err:
            raise ValueError(f"{jax.tree_util.keystr(path)}: {err}") from None
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(place, tree)


def bytes_per_device(tree: PyTree) -> dict:
    """``{device: bytes}`` of the shards of ``tree``'s arrays that each device stores."""
    counts: dict = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            counts[shard.device] = counts.get(shard.device, 0) + shard.data.nbytes
    return counts
