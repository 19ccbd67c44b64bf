"""Shared pieces of the discrete package: argument checks, x0 log-probabilities, categorical draws.

Every check raises an error that names the argument at fault. Value checks (token ids in range,
no ``[MASK]`` in clean data) run only on concrete arrays; under ``jit`` only shapes and dtypes
can be checked.
"""

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer under ``jit``/``vmap``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Returns ``value`` as an int, or raises unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_shape(shape) -> tuple[int, int]:
    """Checks a static ``[B, L]`` sequence-batch shape."""
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
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


def check_cond(cond, batch: int) -> None:
    """Every leaf of ``cond`` must be batch first."""
    for leaf in jax.tree_util.tree_leaves(cond):
        if getattr(leaf, "shape", ())[:1] != (batch,):
            raise ValueError(f"cond leaves must have batch size {batch} first, "
                             f"got shape {getattr(leaf, 'shape', None)}")


def call_denoiser(denoise_fn, x_t, t, cond, vocab_size: int) -> jax.Array:
    """``denoise_fn(x_t, t, cond)`` as float32 logits, its output shape checked."""
    logits = denoise_fn(x_t, t, cond)
    check_logits("denoise_fn output", logits, x_t.shape[0], x_t.shape[1], vocab_size)
    return logits.astype(jnp.float32)


def x0_log_probs(x0_logits, mask_id: int | None) -> jax.Array:
    r"""Normalised :math:`\log\tilde p(x_0 | x_t)`, with ``[MASK]`` given zero probability.

    Clean data never holds ``[MASK]``, so for absorbing / masked processes its logit is
    replaced by :math:`-\infty` before the softmax (MDLM's "zero masking probabilities").
    """
    if mask_id is not None:
        is_mask = jnp.arange(x0_logits.shape[-1]) == mask_id
        x0_logits = jnp.where(is_mask[None, None, :], -jnp.inf, x0_logits)
    return jax.nn.log_softmax(x0_logits, axis=-1)


def check_float64(float64: bool) -> None:
    """``float64=True`` needs 64-bit mode; fail loudly rather than silently draw in float32."""
    if float64 and not jax.config.jax_enable_x64:
        raise RuntimeError(
            "float64=True draws the categorical samples in float64, which needs JAX's 64-bit "
            "mode: call the sampler (and jax.jit on it) inside `with jax.enable_x64(True):`")


def categorical(key, log_probs, *, float64: bool) -> jax.Array:
    r"""One draw per row of ``log_probs [..., V]`` (log-probabilities up to a constant per row;
    ``-inf`` = impossible), as int32 ids, by inverting the row's cumulative distribution:

    .. math:: x = \min\{v : w_v > 0,\ F_v \ge u \max_{w_{v'} > 0} F_{v'}\},\quad
        F_v = \sum_{v' \le v} w_{v'},\ w_v = e^{\ell_v - \max \ell},
        \ u \sim \mathcal U(0, 1]

    One uniform per row, where Gumbel-max needs ``V`` uniforms and ``2V`` logarithms: 4x faster
    for the text samplers' ``[32, 256, 257]`` draws on 2 CPU cores (8 vs 34 ms). Only tokens with
    ``w_v > 0`` can be drawn, however the cumulative sum rounds. With ``float64`` the weights,
    their cumulative sum and the uniforms are float64 (Zheng et al. 2024 show that float32
    categorical sampling -- Gumbel noise there -- lowers the diversity of masked-diffusion
    text). Callers check :func:`check_float64` first.
    """
    dtype = jnp.float64 if float64 else jnp.float32
    log_probs = log_probs.astype(dtype)
    weights = jnp.exp(log_probs - jnp.max(log_probs, axis=-1, keepdims=True))
    cdf = jnp.cumsum(weights, axis=-1)
    possible = weights > 0
    total = jnp.max(jnp.where(possible, cdf, 0), axis=-1, keepdims=True)
    u = 1 - jax.random.uniform(key, log_probs.shape[:-1] + (1,), dtype)  # (0, 1]
    return jnp.argmax(possible & (cdf >= u * total), axis=-1).astype(jnp.int32)


def clamp_known(x, inpaint_mask, inpaint_values) -> jax.Array:
    """Known positions (``inpaint_mask``) take ``inpaint_values``; others keep ``x``."""
    if inpaint_mask is None:
        return x
    return jnp.where(inpaint_mask, inpaint_values, x)


def check_inpaint(inpaint_mask, inpaint_values, shape: tuple[int, int], vocab_size: int,
                  mask_id: int | None) -> tuple[jax.Array | None, jax.Array | None]:
    """Checks the inpainting pair: a boolean ``[B, L]`` mask and token ids of shape ``shape``.

    Returns them as (bool, int32) arrays, or ``(None, None)`` when neither is given. Known
    positions must hold real tokens (not ``[MASK]``).
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
                         f"(inpaint_mask True); known positions need real tokens")
    return inpaint_mask, jnp.asarray(inpaint_values).astype(jnp.int32)
