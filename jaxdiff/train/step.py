"""The train and eval steps: pure functions ``(state, batch) -> (state, metrics)``."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jaxdiff.train.phema import power_ema_update
from jaxdiff.train.state import TrainState, step_key
from jaxdiff.typing import PyTree

# loss_fn(params, key, batch) -> per-example losses [B]
LossFn = Callable[[PyTree, jax.Array, dict], jax.Array]


def ema_update(ema: PyTree, params: PyTree, decay: float) -> PyTree:
    r""":math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta` (Polyak averaging)."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    ema_decay: float, phema_exponents: tuple[float, ...] = (),
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """One optimisation step on the batch mean of ``loss_fn``; jit it with the state donated.

    Metrics: ``loss`` (batch mean), ``grad_norm`` (before clipping) and ``update_norm``;
    the step's key is ``fold_in(state.key, state.step)``. ``phema_exponents``: the
    exponents of the state's power-function EMAs (:func:`jaxdiff.train.phema.power_ema_update`
    after step ``state.step + 1``), one per tree of ``state.phema``.
    """

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        def mean_loss(params):
            return loss_fn(params, step_key(state), batch).mean()

        loss, grads = jax.value_and_grad(mean_loss)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if len(state.phema) != len(phema_exponents):
            raise ValueError(f"the state tracks {len(state.phema)} power-function EMAs, "
                             f"phema_exponents gives {len(phema_exponents)}")
        phema = tuple(power_ema_update(tree, params, state.step + 1, gamma)
                      for tree, gamma in zip(state.phema, phema_exponents, strict=True))
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                               ema_params=ema_update(state.ema_params, params, ema_decay),
                               key=state.key, phema=phema)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
                   "update_norm": optax.tree.norm(updates)}
        return new_state, metrics

    return train_step


def make_eval_step(loss_fn: LossFn) -> Callable[[PyTree, jax.Array, dict], jax.Array]:
    """``eval_step(params, key, batch) -> mean loss`` (e.g. on the EMA parameters)."""

    def eval_step(params: PyTree, key: jax.Array, batch: dict) -> jax.Array:
        return jnp.mean(loss_fn(params, key, batch))

    return eval_step
