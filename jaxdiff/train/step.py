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


def microbatched(batch: dict, microbatches: int) -> dict:
    """``batch``'s leaves ``[B, ...]`` as ``[k, B / k, ...]``, micro-batch ``i`` holding rows
    ``i, i + k, i + 2k, ...``: with the rows sharded in contiguous blocks over the devices,
    every micro-batch keeps ``B / (k n)`` rows on each of the ``n`` devices."""

    def split(leaf):
        rows = leaf.shape[0]
        if rows % microbatches:
            raise ValueError(f"the batch's {rows} rows are not divisible by "
                             f"microbatches={microbatches}")
        grouped = leaf.reshape((rows // microbatches, microbatches) + leaf.shape[1:])
        return jnp.swapaxes(grouped, 0, 1)

    return jax.tree.map(split, batch)


def accumulated_value_and_grad(mean_loss, params, key, batch: dict, microbatches: int):
    """``(loss, grads)`` of the batch mean of ``mean_loss(params, key, batch)`` computed in
    ``microbatches`` equal micro-batches (:func:`microbatched`) by one ``lax.scan``, each
    with ``fold_in(key, i)``: the mean of the micro-batch means and of their gradients, which
    for a loss without randomness is the whole batch's, at a ``1 / k`` of its activation
    memory."""
    value_and_grad = jax.value_and_grad(mean_loss)

    def accumulate(carry, inputs):
        i, micro = inputs
        loss, grads = value_and_grad(params, jax.random.fold_in(key, i), micro)
        return jax.tree.map(jnp.add, carry, (loss, grads)), None

    zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (loss, grads), _ = jax.lax.scan(accumulate, zero, (jnp.arange(microbatches),
                                                       microbatched(batch, microbatches)))
    return jax.tree.map(lambda x: x / microbatches, (loss, grads))


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    ema_decay: float, phema_exponents: tuple[float, ...] = (),
                    microbatches: int = 1,
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """One optimisation step on the batch mean of ``loss_fn``; jit it with the state donated.

    Metrics: ``loss`` (batch mean), ``grad_norm`` (before clipping) and ``update_norm``;
    the step's key is ``fold_in(state.key, state.step)``. ``phema_exponents``: the
    exponents of the state's power-function EMAs (:func:`jaxdiff.train.phema.power_ema_update`
    after step ``state.step + 1``), one per tree of ``state.phema``. ``microbatches = k > 1``
    accumulates the gradient over ``k`` micro-batches in the one compiled step
    (:func:`accumulated_value_and_grad`; micro-batch ``i`` draws with ``fold_in(key, i)``).
    """
    if isinstance(microbatches, bool) or not isinstance(microbatches, int) or microbatches < 1:
        raise ValueError(f"microbatches must be an int >= 1, got {microbatches!r}")

    def mean_loss(params, key, batch):
        return loss_fn(params, key, batch).mean()

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        if microbatches == 1:
            loss, grads = jax.value_and_grad(mean_loss)(state.params, step_key(state), batch)
        else:
            loss, grads = accumulated_value_and_grad(mean_loss, state.params, step_key(state),
                                                     batch, microbatches)
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
