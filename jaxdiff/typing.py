"""Types shared across jaxdiff.

The one boundary of the library: every loss, sampler and likelihood talks to a plain
callable ``denoise_fn(x_t, t, cond=None) -> prediction``, never to a Flax module.
"""

from typing import Any, Literal, Protocol

import jax

PRNGKey = jax.Array
PyTree = Any
Array = jax.Array

Prediction = Literal["eps", "x0", "v"]


class DenoiseFn(Protocol):
    """A denoiser: maps a noisy batch and its timesteps to a prediction.

    Args:
      x_t: noisy inputs, batch first (images ``[B, H, W, C]``, any trailing shape for the
        Gaussian core; token ids ``[B, L]`` for discrete diffusion).
      t: ``int32 [B]`` timestep indices in ``[0, T)`` of the schedule in use.
      cond: optional conditioning (class labels ``int32 [B]``, ...), ``None`` if unconditional.

    Returns:
      The prediction, shaped like ``x_t`` (eps, x0 or v), with twice the channels (last axis)
      when the variance is learned; ``[B, L, V]`` logits for discrete diffusion.
    """

    def __call__(self, x_t: Array, t: Array, cond: Any = None) -> Array: ...
