"""Shape and dtype checks for the models' public entry points.

Every check runs on static shapes and dtypes, so it works under ``jax.jit`` and
``nnx.eval_shape``; every error names the argument at fault.
"""

from collections.abc import Sequence

import jax.numpy as jnp


def _shape(x) -> tuple[int, ...] | None:
    return getattr(x, "shape", None)


def check_floating(name: str, x, *, shape: Sequence[int | None]) -> None:
    """Checks that ``x`` is a floating array of ``shape`` (``None`` entries match any size)."""
    _check_shape(name, x, shape)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")


def check_integer(name: str, x, *, shape: Sequence[int | None]) -> None:
    """Checks that ``x`` is an integer array of ``shape`` (``None`` entries match any size)."""
    _check_shape(name, x, shape)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name} must have an integer dtype, got {x.dtype}")


def check_real(name: str, x, *, shape: Sequence[int | None]) -> None:
    """Checks that ``x`` is an integer or floating array of ``shape``."""
    _check_shape(name, x, shape)
    if not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)):
        raise TypeError(f"{name} must have an integer or floating dtype, got {x.dtype}")


def _check_shape(name: str, x, shape: Sequence[int | None]) -> None:
    actual = _shape(x)
    layout = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
    if actual is None or len(actual) != len(shape):
        raise ValueError(f"{name} must have rank {len(shape)} {layout}, got shape {actual}")
    if any(want is not None and want != got for want, got in zip(shape, actual, strict=True)):
        raise ValueError(f"{name} must have shape {layout}, got {actual}")


def check_positive(name: str, value: int) -> None:
    """Checks a positive integer hyperparameter."""
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Checks ``value % divisor == 0`` for hyperparameters."""
    if value % divisor:
        raise ValueError(f"{name}={value} must be divisible by {divisor_name}={divisor}")


def check_rate(name: str, value: float) -> None:
    """Checks a probability such as a dropout rate: ``0 <= value < 1``."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
