"""Argument checks for the public entry points: each error names the argument at fault.

Shape and dtype checks run on static facts, so they work under ``jax.jit`` and
``nnx.eval_shape``. Value checks (token ids in range, no ``[MASK]`` in clean data, timesteps in
range) run only on concrete arrays (:func:`is_concrete`); under ``jit`` the values are traced.
"""

from collections.abc import Collection, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer under ``jit``/``vmap``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


# ----------------------------------------------------------------------------------------
# Hyperparameters


def check_int(name: str, value, minimum: int = 1, *, optional: bool = False) -> int | None:
    """Returns ``value`` as an int, or raises unless it is an int >= ``minimum`` (not a bool).

    With ``optional``, ``None`` is accepted and returned.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Checks ``value % divisor == 0`` for hyperparameters."""
    if value % divisor:
        raise ValueError(f"{name}={value} must be divisible by {divisor_name}={divisor}")


def check_bool(name: str, value) -> None:
    """Checks a flag is a ``bool`` (not 0 / 1 or a string, which would pass a truth test)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


def check_rate(name: str, value: float) -> None:
    """Checks a probability such as a dropout rate: ``0 <= value < 1``."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


def config_error(field: str, message: str) -> ValueError:
    """The error for an invalid training-config field: ``config field <field>: <message>``."""
    return ValueError(f"config field {field}: {message}")


def check_choice(name: str, value, choices: Collection) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def check_float64(float64: bool) -> None:
    """``float64=True`` needs 64-bit mode; fail loudly rather than silently draw in float32."""
    if float64 and not jax.config.jax_enable_x64:
        raise RuntimeError(
            "float64=True draws the categorical samples in float64, which needs JAX's 64-bit "
            "mode: call the sampler (and jax.jit on it) inside `with jax.enable_x64(True):`")


# ----------------------------------------------------------------------------------------
# Arrays: shapes and dtypes


def _layout(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"


def _check_shape(name: str, x, shape: Sequence[int | None]) -> None:
    actual = getattr(x, "shape", None)
    if actual is None or len(actual) != len(shape):
        raise ValueError(f"{name} must have rank {len(shape)} {_layout(shape)}, "
                         f"got shape {actual}")
    if any(want is not None and want != got for want, got in zip(shape, actual, strict=True)):
        raise ValueError(f"{name} must have shape {_layout(shape)}, got {actual}")


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


def check_sample_shape(shape) -> tuple[int, ...]:
    """Checks a static ``[B, ...]`` sample shape: a tuple of >= 2 positive ints."""
    if (not isinstance(shape, (tuple, list)) or len(shape) < 2
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                       for d in shape)):
        raise ValueError(f"shape must be a tuple of >= 2 positive ints [B, ...], got {shape!r}")
    return tuple(int(d) for d in shape)


def check_cond(cond, batch: int) -> None:
    """Every leaf of the conditioning pytree ``cond`` must be batch first."""
    for leaf in jax.tree_util.tree_leaves(cond):
        if getattr(leaf, "shape", ())[:1] != (batch,):
            raise ValueError(f"cond leaves must have batch size {batch} first, "
                             f"got shape {getattr(leaf, 'shape', None)}")


# ----------------------------------------------------------------------------------------
# Diffusion times


def check_timesteps(name: str, t, batch_size: int, num_steps: int) -> None:
    """Checks an integer ``[B]`` vector of indices in ``[0, num_steps)``.

    The range is checked only when ``t`` holds concrete values (not under ``jit``).
    """
    if getattr(t, "shape", None) != (batch_size,):
        raise ValueError(f"{name} must have shape [B] = ({batch_size},), "
                         f"got {getattr(t, 'shape', None)}")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer array of step indices, got {t.dtype}")
    if is_concrete(t):
        t_np = np.asarray(t)
        if t_np.size and (t_np.min() < 0 or t_np.max() >= num_steps):
            raise ValueError(f"{name} must lie in [0, {num_steps}), got values in "
                             f"[{t_np.min()}, {t_np.max()}]")


def check_times(name: str, t, batch: int) -> None:
    """Checks a floating ``[B]`` vector of continuous times (in ``(0, 1]`` by contract)."""
    if getattr(t, "shape", None) != (batch,):
        raise ValueError(f"{name} must have shape [B] = ({batch},), "
                         f"got {getattr(t, 'shape', None)}")
    if not jnp.issubdtype(t.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating continuous times in (0, 1], got {t.dtype}")


# ----------------------------------------------------------------------------------------
# Token sequences


def check_sequence_shape(shape) -> tuple[int, int]:
    """Checks a static ``[B, L]`` sequence-batch ``shape``; returns it as two ints."""
    if (not isinstance(shape, tuple | list) or len(shape) != 2
            or not all(isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0
                       for d in shape)):
        raise ValueError(f"shape must be a pair of positive ints (B, L), got {shape!r}")
    return int(shape[0]), int(shape[1])


def check_tokens(name: str, x, vocab_size: int, *, shape: tuple[int, ...] | None = None,
                 mask_id: int | None = None) -> None:
    """Checks integer token ids ``[B, L]`` in ``[0, vocab_size)``.

    Args:
      name: the argument's name, for the error message.
      x: the token ids.
      vocab_size: ``V``.
      shape: the exact shape required (default: any rank-2 shape).
      mask_id: if given, ``x`` must not contain it (clean data never holds ``[MASK]``).
    """
    x_shape = getattr(x, "shape", None)
    if x_shape is None or len(x_shape) != 2:
        raise ValueError(f"{name} must be token ids of shape [B, L], got shape {x_shape}")
    if shape is not None and tuple(x_shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x_shape)}")
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    if is_concrete(x) and x.size:
        x_np = np.asarray(x)
        lo, hi = int(x_np.min()), int(x_np.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name} holds token ids in [{lo}, {hi}], outside the vocabulary "
                             f"[0, {vocab_size})")
        if mask_id is not None and np.any(x_np == mask_id):
            raise ValueError(f"{name} contains the [MASK] id {mask_id}; clean data must not")


def check_logits(name: str, logits, batch: int, length: int, vocab_size: int) -> None:
    """Checks floating x0 logits of shape ``[B, L, V]``."""
    want = (batch, length, vocab_size)
    if getattr(logits, "shape", None) != want:
        raise ValueError(f"{name} must have shape [B, L, V] = {want}, "
                         f"got {getattr(logits, 'shape', None)}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating point, got dtype {logits.dtype}")


def call_denoiser(denoise_fn, x_t, t, cond, vocab_size: int) -> jax.Array:
    """``denoise_fn(x_t, t, cond)`` on token ids ``x_t [B, L]`` as float32 logits, its output
    checked to be ``[B, L, V]`` floating."""
    logits = denoise_fn(x_t, t, cond)
    check_logits("denoise_fn output", logits, x_t.shape[0], x_t.shape[1], vocab_size)
    return logits.astype(jnp.float32)


def check_inpaint(inpaint_mask, inpaint_values, shape: tuple[int, int], vocab_size: int,
                  mask_id: int | None) -> tuple[jax.Array | None, jax.Array | None]:
    """Checks the inpainting pair: a boolean ``[B, L]`` mask and token ids of shape ``shape``.

    Returns them as (bool, int32) arrays, or ``(None, None)`` when neither is given. Known
    positions must hold real tokens, not the reserved id ``mask_id`` (``[MASK]``, or the
    autoregressive baseline's BOS).
    """
    if inpaint_mask is None and inpaint_values is None:
        return None, None
    if inpaint_mask is None or inpaint_values is None:
        raise ValueError("inpaint_mask and inpaint_values must be given together")
    if getattr(inpaint_mask, "shape", None) != shape:
        raise ValueError(f"inpaint_mask must have shape {shape}, "
                         f"got {getattr(inpaint_mask, 'shape', None)}")
    check_tokens("inpaint_values", inpaint_values, vocab_size, shape=shape)
    inpaint_mask = jnp.asarray(inpaint_mask).astype(bool)
    if (mask_id is not None and is_concrete(inpaint_mask) and is_concrete(inpaint_values)
            and np.any(np.asarray(inpaint_mask) & (np.asarray(inpaint_values) == mask_id))):
        raise ValueError(f"inpaint_values holds the [MASK] id {mask_id} at a known position "
                         f"(inpaint_mask True); known positions need real tokens (for the "
                         f"autoregressive baseline it is its BOS id)")
    return inpaint_mask, jnp.asarray(inpaint_values).astype(jnp.int32)
