"""Opt-in XLA settings measured to speed up jaxdiff's networks, and JAX's persistent
compilation cache; nothing here runs on import. ``experiments/train.py``, ``sample.py`` and
``evaluate.py`` call :func:`configure` first.

XLA reads ``XLA_FLAGS`` once, when JAX first initialises a backend (the first computation
or ``jax.devices()``), so apply these before that::

    import jaxdiff.perf
    jaxdiff.perf.apply_recommended_xla_flags()   # keeps every flag already in XLA_FLAGS
    import jaxdiff as jd                         # ... then build, jit and run as usual

or set them in the shell::

    export XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type= $XLA_FLAGS"

What each flag does and why it is recommended (measured on 2 cores of an AMD EPYC Zen 4
with jax/jaxlib 0.10.2; ``benchmarks/README.md`` has the numbers and the commands):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no fusion type) stops XLA:CPU from
  handing dots, convolutions and element-wise fusions to the YNNPACK library. On the
  benchmark UNet (64-128 channels, 16-head attention at 16x16, batch 16) the forward pass
  is about 1.2-1.4x faster without it; XLA's own emitters (Eigen for dots and
  convolutions) are faster at these sizes. Numerics stay float32 (no fast-math).

Only CPU flags are recommended so far; on other platforms the list is empty.
"""

import os
import shlex
import warnings

CPU_FLAGS: tuple[str, ...] = ("--xla_cpu_experimental_ynn_fusion_type=",)

_FLAGS_FOR_PLATFORM: dict[str, tuple[str, ...]] = {"cpu": CPU_FLAGS, "gpu": (), "tpu": ()}


def recommended_xla_flags(platform: str = "cpu") -> tuple[str, ...]:
    """The recommended ``XLA_FLAGS`` entries for ``platform`` (``"cpu"``, ``"gpu"``,
    ``"tpu"``), each ``--name=value``."""
    if platform not in _FLAGS_FOR_PLATFORM:
        raise ValueError(f"platform must be one of {sorted(_FLAGS_FOR_PLATFORM)}, "
                         f"got {platform!r}")
    return _FLAGS_FOR_PLATFORM[platform]


def recommended_xla_flags_string(platform: str = "cpu") -> str:
    """``recommended_xla_flags(platform)`` as one space-separated ``XLA_FLAGS`` value."""
    return " ".join(recommended_xla_flags(platform))


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0].lstrip("-")


def merge_xla_flags(existing: str | None, flags: tuple[str, ...] | list[str]) -> str:
    """``existing`` (an ``XLA_FLAGS`` value, or ``None``) with each of ``flags`` appended
    unless ``existing`` already sets a flag of that name: the user's setting always wins.
    """
    current = shlex.split(existing or "")
    present = {_flag_name(flag) for flag in current}
    added = [flag for flag in flags if _flag_name(flag) not in present]
    return " ".join(current + added)


def apply_recommended_xla_flags(platform: str = "cpu", *, environ=None) -> str:
    """Adds the recommended flags for ``platform`` to ``XLA_FLAGS`` in ``environ``
    (default ``os.environ``) without overriding any flag the user already set; returns the
    new value.

    Call it before JAX initialises its backends; afterwards XLA ignores ``XLA_FLAGS``
    changes, and a ``RuntimeWarning`` says so.
    """
    environ = os.environ if environ is None else environ
    value = merge_xla_flags(environ.get("XLA_FLAGS"), recommended_xla_flags(platform))
    if value != environ.get("XLA_FLAGS", ""):
        if environ is os.environ and _backends_initialized():
            warnings.warn("JAX's backends are already initialised: XLA_FLAGS set now has no "
                          "effect in this process; call apply_recommended_xla_flags() before "
                          "the first JAX computation", RuntimeWarning, stacklevel=2)
        environ["XLA_FLAGS"] = value
    return value


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # pragma: no cover - private JAX API moved
        return False


# Where compiled programs are kept between processes (``JAXDIFF_COMPILATION_CACHE`` overrides;
# ``off`` disables the cache in ``configure``).
DEFAULT_COMPILATION_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
    "jaxdiff", "xla")


def enable_compilation_cache(directory: str | os.PathLike | None = None, *,
                             min_compile_time_s: float = 1.0) -> str:
    """Turns on JAX's persistent compilation cache in ``directory`` (default: the
    ``JAXDIFF_COMPILATION_CACHE`` environment variable, else ``DEFAULT_COMPILATION_CACHE``)
    for every program that takes at least ``min_compile_time_s`` to compile; returns the
    directory.

    XLA:CPU compiles the benchmark UNet's train step in 15-18 s; a later process with the
    same program, shapes, flags and versions traces and loads it in about 4 s
    (``benchmarks/README.md``).
    """
    import jax

    directory = os.fspath(directory or os.environ.get("JAXDIFF_COMPILATION_CACHE")
                          or DEFAULT_COMPILATION_CACHE)
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
    return directory


def configure(platform: str = "cpu") -> str | None:
    """What the ``experiments/`` programs call before any computation: the recommended XLA
    flags for ``platform`` (:func:`apply_recommended_xla_flags`) and the compilation cache
    (:func:`enable_compilation_cache`) unless ``JAXDIFF_COMPILATION_CACHE=off``; returns the
    cache directory (``None`` when off)."""
    apply_recommended_xla_flags(platform)
    if os.environ.get("JAXDIFF_COMPILATION_CACHE", "").lower() == "off":
        return None
    return enable_compilation_cache()
