"""Process-local batches -> global arrays sharded over the 8 simulated CPU devices."""

import jax
import numpy as np
import pytest

from jaxdiff import data


def test_global_batch_equals_local_and_is_sharded():
    assert jax.device_count() == 8 and jax.process_count() == 1
    n = 40
    ds = data.ArrayDataset((np.arange(n * 4, dtype=np.float32) / 256).reshape(n, 2, 2, 1),
                           np.arange(n, dtype=np.int32), num_classes=n)
    mesh = data.data_mesh()
    assert mesh.shape == {"data": 8}
    local = next(data.batches(ds, batch_size=16, seed=0, start_step=3))
    batch = data.global_batch(local, mesh)
    for key in ("image", "label"):
        x = batch[key]
        assert isinstance(x, jax.Array) and x.shape == local[key].shape
        assert x.dtype == local[key].dtype
        np.testing.assert_array_equal(np.asarray(x), local[key])
        assert len(x.sharding.device_set) == 8 and len(x.addressable_shards) == 8
        for shard in x.addressable_shards:
            assert shard.data.shape[0] == 2
            np.testing.assert_array_equal(np.asarray(shard.data), local[key][shard.index])
    # A jitted reduction sees the same values as NumPy.
    total = jax.jit(lambda b: b["image"].sum())(batch)
    np.testing.assert_allclose(float(total), local["image"].sum())


def test_sub_mesh_and_bad_arguments():
    mesh = data.data_mesh(4)
    x = data.global_batch({"x": np.ones((8, 3), np.float32)}, mesh)["x"]
    assert len(x.sharding.device_set) == 4
    with pytest.raises(ValueError, match="num_devices"):
        data.data_mesh(9)
    with pytest.raises(ValueError, match=r"local_batch\['x'\].*divisible"):
        data.global_batch({"x": np.ones((12, 3), np.float32)}, data.data_mesh())
    with pytest.raises(ValueError, match="mesh must have a 'data' axis"):
        data.global_batch(np.ones((8,)), jax.make_mesh((8,), ("batch",)))


def test_mesh_shape_resolves_the_free_axis_and_names_bad_sizes():
    assert data.mesh_shape({"data": -1, "fsdp": 4}, 8) == {"data": 2, "fsdp": 4}
    assert data.mesh_shape({"fsdp": -1}, 8) == {"data": 1, "fsdp": 8}
    assert data.mesh_shape({"data": 8}, 8) == {"data": 8, "fsdp": 1}
    with pytest.raises(ValueError, match="has 4 devices, but there are 8"):
        data.mesh_shape({"data": 4}, 8)
    with pytest.raises(ValueError, match="'model' is not one of"):
        data.mesh_shape({"model": 2}, 8)
    with pytest.raises(ValueError, match="'fsdp' must be an int >= 1 or -1"):
        data.mesh_shape({"fsdp": True}, 8)


def test_batch_on_a_2d_mesh_is_split_over_both_axes():
    mesh = data.device_mesh({"data": 2, "fsdp": 4})
    assert mesh.shape == {"data": 2, "fsdp": 4}
    local = {"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3)}
    x = data.global_batch(local, mesh)["x"]
    np.testing.assert_array_equal(np.asarray(x), local["x"])
    assert x.sharding.spec == jax.sharding.PartitionSpec(("data", "fsdp"), None)
    # every device holds its own two rows, in device-mesh order
    for i, device in enumerate(mesh.devices.flat):
        shard = next(s for s in x.addressable_shards if s.device == device)
        np.testing.assert_array_equal(np.asarray(shard.data), local["x"][2 * i:2 * i + 2])
    with pytest.raises(ValueError, match="divisible by this process's 8 data shards"):
        data.global_batch({"x": np.ones((12, 3), np.float32)}, mesh)
