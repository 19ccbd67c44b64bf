"""Rematerialisation of a network's blocks (gradient checkpointing).

Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost": instead of keeping every
intermediate activation of a block for the backward pass, keep only the block's inputs and
recompute the rest when the gradient reaches the block. A train step then holds the blocks'
inputs plus one block's intermediates at a time, for about one more forward pass of compute.
The function and its gradients are unchanged. Each network config's ``remat`` field turns
it on for all of that network's blocks.
"""

import functools
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx


def rematerialisable(call: Callable) -> Callable:
    """Decorates a block's ``__call__``: when the block's ``remat`` attribute is True, the
    call runs under ``nnx.remat`` (``jax.checkpoint`` lifted to NNX modules).

    Positional arguments and the keyword arguments that hold arrays or NNX state (the
    dropout ``Rngs``, whose key counter the recomputation replays) pass through the
    checkpoint; the other keyword arguments (``causal=True``, a mask's static structure)
    are fixed for the call, as Python values.
    """

    @functools.wraps(call)
    def maybe_rematerialised(block: nnx.Module, *args, **kwargs):
        if not block.remat:
            return call(block, *args, **kwargs)
        traced = {name: value for name, value in kwargs.items() if _holds_state(value)}
        fixed = {name: value for name, value in kwargs.items() if name not in traced}

        def forward(block, args, traced):
            return call(block, *args, **traced, **fixed)

        return nnx.remat(forward)(block, args, traced)

    return maybe_rematerialised


def _holds_state(value) -> bool:
    """Whether ``value`` is NNX state or a pytree with an array leaf."""
    return isinstance(value, nnx.Pytree) or any(
        isinstance(leaf, jax.Array | np.ndarray) for leaf in jax.tree.leaves(value))
