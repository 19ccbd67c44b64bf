"""Samples from a trained run: ``python experiments/sample.py --workdir DIR [--sampler S
--steps 50 --count 64 --guidance 3.0 --out DIR/samples]``.

Restores the newest checkpoint of DIR and samples with its EMA parameters through the run's
task (:mod:`jaxdiff.tasks`): an image run writes a PNG grid, a text run a .txt (one sample
per line); both an .npz of the samples. ``--sampler`` is one of the process's samplers
(default: its first, e.g. ``ddim`` for ``gaussian``, ``cached`` for ``autoregressive``);
a flag the process cannot honour (``--guidance`` for an unconditional or a text run,
``--steps`` for the autoregressive baseline) is an error, not ignored.
"""

import pathlib

import jax
import numpy as np
from absl import app, flags

from jaxdiff import perf, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_SAMPLER = flags.DEFINE_string("sampler", None, "one of the process's samplers "
                                                "(default: the process's first)")
_STEPS = flags.DEFINE_integer("steps", None, "sampling steps (default: the sampler's own)")
_COUNT = flags.DEFINE_integer("count", 64, "number of samples")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_OUT = flags.DEFINE_string("out", None, "output path without suffix "
                                        "(default DIR/samples_<process>_<sampler>_<steps>)")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    workdir = pathlib.Path(_WORKDIR.value)
    run, state = train.restore_workdir(workdir)
    sampler = _SAMPLER.value or run.task.samplers[0]
    sample = train.make_sampler(run, sampler=sampler, num_steps=_STEPS.value,
                                count=_COUNT.value, guidance_scale=_GUIDANCE.value)
    samples = np.asarray(sample(jax.random.key(_SEED.value), state.ema_params))
    stem = pathlib.Path(_OUT.value or workdir / f"samples_{run.task.name}_{sampler}"
                                               f"_{_STEPS.value or 'default'}")
    path = train.save_samples(run, stem, samples)
    np.savez(stem.with_suffix(".npz"), samples=samples, step=int(state.step))
    print(f"wrote {path} and {stem.with_suffix('.npz')} (step {int(state.step)})")


if __name__ == "__main__":
    app.run(main)
