"""Samples from a trained run: ``python experiments/sample.py --workdir DIR [--sampler ddim
--steps 50 --count 64 --guidance 3.0 --out DIR/samples]``.

Restores the newest checkpoint of DIR and samples with its EMA parameters: an image run
writes a PNG grid and an .npz of the images; a text run writes a .txt (one sample per line)
and an .npz of the token ids, from its process's sampler (``--steps`` steps for diffusion,
left to right for the autoregressive baseline; ``--sampler`` and ``--guidance`` are image
settings).
"""

import pathlib

import jax
import numpy as np
from absl import app, flags

from jaxdiff import gaussian, perf, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_SAMPLER = flags.DEFINE_enum("sampler", "ddim", list(gaussian.SAMPLERS), "image sampler")
_STEPS = flags.DEFINE_integer("steps", 50, "sampling steps")
_COUNT = flags.DEFINE_integer("count", 64, "number of samples")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_OUT = flags.DEFINE_string("out", None, "output path without suffix "
                                        "(default DIR/samples_<sampler or process>_<steps>)")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    workdir = pathlib.Path(_WORKDIR.value)
    run, state = train.restore_workdir(workdir)
    sample = train.make_sampler(run, sampler=_SAMPLER.value, num_steps=_STEPS.value,
                                count=_COUNT.value, guidance_scale=_GUIDANCE.value)
    samples = np.asarray(sample(jax.random.key(_SEED.value), state.ema_params))
    name = run.config.diffusion.process if run.is_text else _SAMPLER.value
    stem = pathlib.Path(_OUT.value or workdir / f"samples_{name}_{_STEPS.value}")
    path = train.save_samples(run, stem, samples)
    np.savez(stem.with_suffix(".npz"), samples=samples, step=int(state.step))
    print(f"wrote {path} and {stem.with_suffix('.npz')} (step {int(state.step)})")


if __name__ == "__main__":
    app.run(main)
