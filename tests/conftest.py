"""Test-wide JAX settings: 8 simulated CPU devices and strict rank promotion.

XLA_FLAGS must be set before JAX initialises its backends, hence at import time here.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops every compiled program after each test module: a worker runs hundreds of modules,
    and their executables otherwise stay in memory for its whole life (13 GB of a 23 GB
    machine, which starved the subprocess tests)."""
    yield
    jax.clear_caches()
