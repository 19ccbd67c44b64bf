"""Samples from a trained run: ``python experiments/sample.py --workdir DIR [--sampler ddim
--steps 50 --count 64 --guidance 3.0 --out DIR/samples.png]`` writes a PNG grid and an .npz.

Restores the newest checkpoint of DIR and samples with its EMA parameters.
"""

import pathlib

import jax
import numpy as np
from absl import app, flags

from jaxdiff import gaussian, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_SAMPLER = flags.DEFINE_enum("sampler", "ddim", list(gaussian.SAMPLERS), "sampler")
_STEPS = flags.DEFINE_integer("steps", 50, "sampling steps")
_COUNT = flags.DEFINE_integer("count", 64, "number of samples")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_OUT = flags.DEFINE_string("out", None, "PNG path (default DIR/samples_<sampler>_<steps>.png)")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    workdir = pathlib.Path(_WORKDIR.value)
    run, state = train.restore_workdir(workdir)
    sample = train.make_sampler(run, sampler=_SAMPLER.value, num_steps=_STEPS.value,
                                count=_COUNT.value, guidance_scale=_GUIDANCE.value)
    images = np.asarray(sample(jax.random.key(_SEED.value), state.ema_params))
    out = pathlib.Path(_OUT.value or workdir / f"samples_{_SAMPLER.value}_{_STEPS.value}.png")
    train.save_image_grid(out, images, scale=max(1, 128 // images.shape[1]))
    np.savez(out.with_suffix(".npz"), images=images, step=int(state.step))
    print(f"wrote {out} and {out.with_suffix('.npz')} (step {int(state.step)})")


if __name__ == "__main__":
    app.run(main)
