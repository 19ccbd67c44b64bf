"""``model.compute_dtype="bfloat16"`` as a training option: the loop's train step convolves
in bfloat16 while the parameters, gradients, optimizer state and EMA stay float32."""

import re

import jax
import numpy as np

from jaxdiff import data
from jaxdiff.train import loop
from tests.train.util import TINY, tiny_config


def _first_losses(compute_dtype):
    run = loop.build_run(tiny_config(model={**TINY["model"], "compute_dtype": compute_dtype}))
    state, shardings = loop.placed(run, loop.initial_state(run))
    step = loop.compiled_train_step(run, shardings)
    batches = loop.train_batches(run, start_step=0)
    batch = data.global_batch(next(batches), run.mesh)
    text = step.lower(state, batch).as_text()
    losses = []
    for _ in range(3):
        state, metrics = step(state, data.global_batch(next(batches), run.mesh))
        losses.append(float(metrics["loss"]))
    return text, state, np.array(losses)


def test_bf16_training_convolves_in_bf16_and_keeps_float32_state():
    bf16_text, bf16_state, bf16_losses = _first_losses("bfloat16")
    fp32_text, _, fp32_losses = _first_losses(None)
    conv_operands = re.findall(r"stablehlo\.convolution.*?:\s*\(tensor<[^>]*x(\w+)>", bf16_text)
    assert conv_operands and set(conv_operands) == {"bf16"}
    assert "bf16" not in fp32_text
    dtypes = {x.dtype for x in jax.tree.leaves((bf16_state.params, bf16_state.opt_state,
                                                bf16_state.ema_params))}
    assert dtypes <= {np.dtype(np.float32), np.dtype(np.int32)}
    assert np.dtype(np.float32) in dtypes
    # bf16 rounding (2^-9 relative per operation) moves the losses by well under 5%
    np.testing.assert_allclose(bf16_losses, fp32_losses, rtol=0.05)
