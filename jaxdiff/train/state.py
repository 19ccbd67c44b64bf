"""The train state: one pytree that holds everything a resumed run needs."""

from typing import NamedTuple

import jax
import optax

from jaxdiff.typing import PyTree


class TrainState(NamedTuple):
    """``step`` (int32 scalar), ``params``, ``opt_state``, ``ema_params``, the run's raw
    PRNG key data (``uint32``; typed keys are not serialisable), from which step ``s`` draws
    ``fold_in(key, s)``, and ``phema``: EDM2's power-function EMAs, one parameter tree per
    profile of ``optim.phema_stds`` (:mod:`jaxdiff.train.phema`; empty when off)."""

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    ema_params: PyTree
    key: jax.Array
    phema: tuple = ()


def create_train_state(params: PyTree, optimizer: optax.GradientTransformation,
                       key: jax.Array, *, phema_profiles: int = 0) -> TrainState:
    """Step 0: the optimizer initialised on ``params``, the EMA and each of the
    ``phema_profiles`` power-function EMAs equal to (a copy of) ``params``, so that no two
    leaves share a buffer and the state can be donated."""
    return TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                      opt_state=optimizer.init(params),
                      ema_params=jax.tree.map(jax.numpy.copy, params),
                      key=jax.random.key_data(key),
                      phema=tuple(jax.tree.map(jax.numpy.copy, params)
                                  for _ in range(phema_profiles)))


def step_key(state: TrainState) -> jax.Array:
    """The key of the state's current step: ``fold_in(key, step)``."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
