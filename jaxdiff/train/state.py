"""The train state: one pytree that holds everything a resumed run needs."""

from typing import NamedTuple

import jax
import optax

from jaxdiff.typing import PyTree


class TrainState(NamedTuple):
    """``step`` (int32 scalar), ``params``, ``opt_state``, ``ema_params`` and the run's raw
    PRNG key data (``uint32``; typed keys are not serialisable), from which step ``s`` draws
    ``fold_in(key, s)``."""

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    ema_params: PyTree
    key: jax.Array


def create_train_state(params: PyTree, optimizer: optax.GradientTransformation,
                       key: jax.Array) -> TrainState:
    """Step 0: the optimizer initialised on ``params``, EMA equal to (a copy of) ``params``,
    so that no two leaves share a buffer and the state can be donated."""
    return TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                      opt_state=optimizer.init(params),
                      ema_params=jax.tree.map(jax.numpy.copy, params),
                      key=jax.random.key_data(key))


def step_key(state: TrainState) -> jax.Array:
    """The key of the state's current step: ``fold_in(key, step)``."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
