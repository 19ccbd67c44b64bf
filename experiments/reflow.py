"""Reflow pairs from a trained flow run: ``python experiments/reflow.py --workdir RUN --out
pairs.npz [--count 8000 --steps 50 --solver euler --batch 500 --seed 0]``.

Draws ``--count`` prior samples z, solves the run's ODE from each with its EMA parameters
(:func:`jaxdiff.gaussian.reflow_pairs`) and writes an array file with ``images`` (the samples,
clipped to the data range [-1, 1], as every dataset is), ``noise`` (z) and, for a
class-conditional run, ``labels`` (the classes in turn). Then train 2-rectified flow on it,
starting from the run (Liu et al. 2023, Alg. 1)::

    python experiments/train.py --config experiments/configs/digits_cpu.py:flow \\
        --workdir RUN2 --config.data.name=pairs.npz --config.train.init_from=RUN

The pairs file's held-out split (every fifth pair) is what RUN2's evaluation compares with:
the teacher's samples, not the real data.
"""

import pathlib

import jax
import numpy as np
from absl import app, flags, logging

from jaxdiff import gaussian, perf, train
from jaxdiff.tasks.continuous import path_denoiser

_WORKDIR = flags.DEFINE_string("workdir", None, "a trained flow run's directory")
_OUT = flags.DEFINE_string("out", None, "the pairs file to write (.npz)")
_COUNT = flags.DEFINE_integer("count", 8000, "number of pairs")
_STEPS = flags.DEFINE_integer("steps", 50, "ODE steps per pair")
_SOLVER = flags.DEFINE_enum("solver", "euler", gaussian.SOLVERS, "the ODE solver")
_BATCH = flags.DEFINE_integer("batch", 500, "pairs per compiled call")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the prior draws")
flags.mark_flags_as_required(["workdir", "out"])


def pairs(run, params, *, count: int, steps: int, solver: str, batch: int, seed: int):
    """``(images, noise, labels)`` NumPy arrays of ``count`` pairs (``labels`` None for an
    unconditional run); ``clipped``: the fraction of sample values outside [-1, 1]."""
    if not run.task.coupled_noise:
        raise app.UsageError(f"reflow needs a flow run (its process trains on the pairs); "
                             f"this workdir holds a {run.task.name!r} run")
    denoiser = path_denoiser(run, params)
    shape = run.task.modality.sample_shape(run, batch)
    prediction = run.task.setting(run.config, "prediction")
    conditional = run.num_classes is not None

    @jax.jit
    def draw(key, cond):
        return gaussian.reflow_pairs(key, denoiser, run.process, shape, solver=solver,
                                     num_steps=steps, prediction=prediction, cond=cond)

    images, noise, labels = [], [], []
    for i in range(-(-count // batch)):
        cond = (np.arange(i * batch, (i + 1) * batch) % run.num_classes).astype(np.int32) \
            if conditional else None
        z, x = draw(jax.random.fold_in(jax.random.key(seed), i), cond)
        noise.append(np.asarray(z))
        images.append(np.asarray(x))
        labels.append(cond)
    images, noise = np.concatenate(images)[:count], np.concatenate(noise)[:count]
    labels = np.concatenate(labels)[:count] if conditional else None
    return images, noise, labels


def write_pairs(path, images, noise, labels) -> float:
    """Writes the array file; returns the fraction of image values clipped to [-1, 1]."""
    clipped = float(np.mean(np.abs(images) > 1.0))
    arrays = {"images": np.clip(images, -1.0, 1.0).astype(np.float32),
              "noise": noise.astype(np.float32)}
    if labels is not None:
        arrays["labels"] = labels
    np.savez(path, **arrays)
    return clipped


def main(argv):
    del argv
    perf.configure()
    logging.set_verbosity(logging.WARNING)
    run, state = train.restore_workdir(_WORKDIR.value)
    images, noise, labels = pairs(run, state.ema_params, count=_COUNT.value,
                                  steps=_STEPS.value, solver=_SOLVER.value,
                                  batch=_BATCH.value, seed=_SEED.value)
    out = pathlib.Path(_OUT.value)
    clipped = write_pairs(out, images, noise, labels)
    print(f"wrote {len(images)} pairs to {out} ({100 * clipped:.2f}% of the sample values "
          f"clipped to [-1, 1])")


if __name__ == "__main__":
    app.run(main)
