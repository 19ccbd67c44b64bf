"""Argument checks for the public entry points: each error names the argument at fault."""

from collections.abc import Collection

import jax
import jax.numpy as jnp
import numpy as np


def check_choice(name: str, value, choices: Collection) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def check_batch(name: str, x, *, min_rank: int = 2, floating: bool = True) -> None:
    """Checks that ``x`` is a batch-first array of rank >= ``min_rank`` (floating if asked)."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < min_rank:
        raise ValueError(
            f"{name} must be a batch-first array of rank >= {min_rank}, got shape {shape}")
    if floating and not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")


def check_same_shape(name: str, x, like_name: str, like) -> None:
    """Checks ``x.shape == like.shape``."""
    if getattr(x, "shape", None) != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {like.shape}, "
                         f"got {getattr(x, 'shape', None)}")


def check_timesteps(name: str, t, batch_size: int, num_steps: int) -> None:
    """Checks an integer ``[B]`` vector of indices in ``[0, num_steps)``.

    The range is checked only when ``t`` holds concrete values (not under ``jit``).
    """
    if getattr(t, "shape", None) != (batch_size,):
        raise ValueError(f"{name} must have shape [B] = ({batch_size},), "
                         f"got {getattr(t, 'shape', None)}")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array of step indices, got {t.dtype}")
    if not isinstance(t, jax.core.Tracer):
        t_np = np.asarray(t)
        if t_np.size and (t_np.min() < 0 or t_np.max() >= num_steps):
            raise ValueError(f"{name} must lie in [0, {num_steps}), got values in "
                             f"[{t_np.min()}, {t_np.max()}]")
