"""Golden one-step values, nanodo-style: for each process, the training loss and gradient
norm of the first step of its tiny config, and the held-out objective of the first
evaluation batch, on fixed data and keys.

These pin the whole path config -> data -> model -> objective -> optimiser. They must not
change when code moves; update them only for a deliberate change of the numerics (a new
initialiser, loss or data order), and say so in the commit.
"""

import tests.conftest  # noqa: F401,I001  (8 devices before jax initialises)
import jax
import numpy as np
import pytest

from jaxdiff import data, train
from tests.train.util import TINY, TINY_TEXT, tiny_config

CONFIGS = {
    "gaussian": tiny_config(TINY),
    "gaussian-learned-conditional": tiny_config(
        TINY, data={"conditional": True}, diffusion={"learned_variance": True}),
    "absorbing": tiny_config(TINY_TEXT, diffusion={"process": "absorbing",
                                                   "schedule": "reciprocal"}),
    "uniform": tiny_config(TINY_TEXT, diffusion={"process": "uniform", "schedule": "cosine"}),
    "masked": tiny_config(TINY_TEXT),
    "autoregressive": tiny_config(TINY_TEXT, diffusion={"process": "autoregressive",
                                                        "schedule": None},
                                  train={"sample_steps": None}),
}

# (train loss, grad norm, held-out objective); printed by this file's __main__.
GOLDEN = {
    "absorbing": (5.034340858459473, 1.4258382320404053, 51.49254608154297),
    "autoregressive": (52.733394622802734, 10.49643325805664, 52.733394622802734),
    "gaussian": (1.0482938289642334, 0.9532058835029602, 0.9592719078063965),
    "gaussian-learned-conditional": (1.0621241331100464, 1.1949900388717651, 0.9693213701248169),
    "masked": (49.5835075378418, 13.996238708496094, 59.83585739135742),
    "uniform": (4.815239906311035, 0.9436478614807129, 53.17546463012695),
}


def one_step(config: train.ExperimentConfig) -> tuple[float, float, float]:
    run = train.build_run(config)
    state = train.initial_state(run)
    step = jax.jit(train.make_train_step(train.loss_fn_for(run, train=True), run.optimizer,
                                         ema_decay=config.optim.ema_decay))
    batch = data.global_batch(next(train.train_batches(run, start_step=0)), run.mesh)
    _, metrics = step(state, batch)
    eval_step = jax.jit(train.make_eval_step(train.loss_fn_for(run, train=False)))
    held_out = train.eval_batches(run)[0]
    eval_loss = eval_step(state.params, jax.random.key(0), data.global_batch(held_out, run.mesh))
    return float(metrics["loss"]), float(metrics["grad_norm"]), float(eval_loss)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_golden_one_step(name):
    got = one_step(CONFIGS[name])
    np.testing.assert_allclose(
        got, GOLDEN[name], rtol=2e-5,
        err_msg=f"{name}: the first step's (loss, grad norm, held-out objective) moved. "
                "Update GOLDEN only for a deliberate change of the numerics (python -m "
                "tests.train.test_golden prints the new values).")


if __name__ == "__main__":   # python -m tests.train.test_golden
    for name in sorted(CONFIGS):
        print(f"    {name!r}: {one_step(CONFIGS[name])!r},")
