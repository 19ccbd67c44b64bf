"""Samples from a trained run: ``python experiments/sample.py --workdir DIR [--sampler S
--steps 50 --count 64 --class 3 --guidance 3.0 --out DIR/samples]``; a text run fills a
template with ``--inpaint "the [MASK] sat on the [MASK]" --mask_length 3``.

Restores the newest checkpoint of DIR and samples with its EMA parameters through the run's
task (:mod:`jaxdiff.tasks`): an image run writes a PNG grid, a text run a .txt (one sample
per line); both an .npz of the samples. ``--sampler`` is one of the process's samplers
(default: its first, e.g. ``ddim`` for ``gaussian``, ``cached`` for ``autoregressive``);
a flag the process cannot honour (``--guidance`` for an unconditional or a text run,
``--steps`` for the autoregressive baseline, ``--class`` for an unconditional run) is an
error, not ignored.
"""

import pathlib

import jax
import numpy as np
from absl import app, flags, logging

from jaxdiff import perf, tasks, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_SAMPLER = flags.DEFINE_string("sampler", None, "one of the process's samplers "
                                                "(default: the process's first)")
_STEPS = flags.DEFINE_integer("steps", None, "sampling steps (default: the run's "
                                            "train.sample_steps)")
_INPAINT = flags.DEFINE_string("inpaint", None, 'text runs: fill the [MASK] spans of a '
                                                'template, e.g. "the [MASK] sat on the [MASK]"')
_MASK_LENGTH = flags.DEFINE_integer("mask_length", 3, "text runs: characters per [MASK] span")
_PROMPT = flags.DEFINE_string("prompt", None, "text-conditioned runs: the caption")
_CLASS = flags.DEFINE_integer("class", None, "class-conditional runs: draw every sample of "
                                             "this class (default: the classes in turn)")
_COUNT = flags.DEFINE_integer("count", 64, "number of samples")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_OUT = flags.DEFINE_string("out", None, "output path without suffix "
                                        "(default DIR/samples_<process>_<sampler>_<steps>)")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    logging.set_verbosity(logging.WARNING)   # orbax logs every restore at INFO
    workdir = pathlib.Path(_WORKDIR.value)
    run, state = train.restore_workdir(workdir)
    sampler = _SAMPLER.value or run.task.samplers[0]
    steps = _STEPS.value
    if steps is None and "num_steps" in run.task.sampler_options:
        steps = run.config.train.sample_steps
    if _PROMPT.value is not None:
        raise app.UsageError(f"--prompt needs a text-conditioned run; the {run.task.name!r} "
                             "run in this workdir has no caption input")
    options = {"guidance_scale": _GUIDANCE.value,
               "classes": None if _CLASS.value is None
               else np.full(_COUNT.value, _CLASS.value, np.int32)}
    if _INPAINT.value is not None:
        if run.task.modality is not tasks.TEXT:
            raise app.UsageError("--inpaint fills a text template: it needs a text run")
        options["inpaint_mask"], options["inpaint_values"] = tasks.text.template_inpainting(
            _INPAINT.value, mask_length=_MASK_LENGTH.value, count=_COUNT.value)
    sample = train.make_sampler(run, sampler=sampler, num_steps=steps, count=_COUNT.value,
                                **options)
    samples = np.asarray(sample(jax.random.key(_SEED.value), state.ema_params))
    stem = pathlib.Path(_OUT.value or workdir / f"samples_{run.task.name}_{sampler}"
                                               f"_{steps or 'default'}")
    path = train.save_samples(run, stem, samples)
    np.savez(stem.with_suffix(".npz"), samples=samples, step=int(state.step))
    print(f"wrote {path} and {stem.with_suffix('.npz')} (step {int(state.step)})")


if __name__ == "__main__":
    app.run(main)
