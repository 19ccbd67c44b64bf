"""jaxdiff.perf: the recommended XLA flags and how they are merged into XLA_FLAGS."""

import os
import subprocess
import sys
import textwrap

import pytest

import jaxdiff.perf as perf

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="


def test_recommended_flags():
    assert perf.recommended_xla_flags() == (YNN_OFF,)
    assert perf.recommended_xla_flags("cpu") == (YNN_OFF,)
    assert perf.recommended_xla_flags("gpu") == ()
    assert perf.recommended_xla_flags_string("cpu") == YNN_OFF
    with pytest.raises(ValueError, match="platform must be one of"):
        perf.recommended_xla_flags("metal")


def test_merge_never_overrides_a_flag_the_user_set():
    assert perf.merge_xla_flags(None, (YNN_OFF,)) == YNN_OFF
    assert perf.merge_xla_flags("", (YNN_OFF,)) == YNN_OFF
    assert (perf.merge_xla_flags("--xla_force_host_platform_device_count=8", (YNN_OFF,))
            == "--xla_force_host_platform_device_count=8 " + YNN_OFF)
    user = "--xla_cpu_experimental_ynn_fusion_type=individual_dot --xla_dump_to=/tmp/x"
    assert perf.merge_xla_flags(user, (YNN_OFF,)) == user
    assert perf.merge_xla_flags(YNN_OFF, (YNN_OFF,)) == YNN_OFF  # idempotent


def test_apply_to_an_environment():
    env = {}
    assert perf.apply_recommended_xla_flags(environ=env) == YNN_OFF
    assert env == {"XLA_FLAGS": YNN_OFF}
    env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
    perf.apply_recommended_xla_flags(environ=env)
    assert env == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
    env = {}
    assert perf.apply_recommended_xla_flags("gpu", environ=env) == ""
    assert env == {}


def test_xla_accepts_the_flags_in_a_fresh_process():
    # XLA aborts on an unknown flag name, so this checks the flags exist in this jaxlib
    code = ("import jaxdiff.perf as p; p.apply_recommended_xla_flags(); import os, jax; "
            "print(os.environ['XLA_FLAGS'], '|', float(jax.numpy.arange(4.0).sum()))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == YNN_OFF + " | 6.0"


def test_warns_after_backend_initialisation(monkeypatch):
    monkeypatch.setattr(perf, "_backends_initialized", lambda: True)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.warns(RuntimeWarning, match="already initialised"):
        perf.apply_recommended_xla_flags()
    assert os.environ["XLA_FLAGS"] == YNN_OFF


def test_compilation_cache_is_written_and_reused_across_processes(tmp_path):
    """``configure`` turns on JAX's persistent cache in JAXDIFF_COMPILATION_CACHE: the first
    process writes the compiled program, a second process with the same program loads it
    (no new entry); ``off`` disables it."""
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from jaxdiff import perf
        print(perf.configure())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).sum()))
    """)
    cache = tmp_path / "cache"

    def run(setting):
        env = dict(os.environ, JAXDIFF_COMPILATION_CACHE=setting)
        return subprocess.run([sys.executable, "-c", script], env=env, check=True,
                              capture_output=True, text=True).stdout.split()

    first = run(str(cache))
    entries = sorted(p.name for p in cache.iterdir())
    assert first[0] == str(cache) and any(name.startswith("jit_") for name in entries)
    assert run(str(cache)) == first and sorted(p.name for p in cache.iterdir()) == entries
    assert run("off")[0] == "None"
