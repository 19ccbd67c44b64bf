"""Samples from a trained run: ``python experiments/sample.py --workdir DIR [--sampler S
--steps 50 --count 64 --class 3 --guidance 3.0 --out DIR/samples]``; a text run fills a
template with ``--inpaint "the [MASK] sat on the [MASK]" --mask_length 3``; a
caption-conditioned run draws for ``--prompt "a seven on the left and a sneaker on the right"``
(any text its encoder takes; a latent run's samples are decoded). Or from a
pretrained diffusers pipeline: ``--pretrained DIR`` (e.g. google/ddpm-cifar10-32 as
``huggingface_hub.snapshot_download`` leaves it), on its scheduler's betas, prediction type,
variance and clipping (:mod:`jaxdiff.pretrained.pipeline`), with the samplers of a
``gaussian`` run.

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

from jaxdiff import perf, pretrained, tasks, train
from jaxdiff.data.grid import save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_PRETRAINED = flags.DEFINE_string("pretrained", None, "instead of --workdir: a diffusers "
                                                      "pipeline folder (UNet2DModel + scheduler)")
_SAMPLER = flags.DEFINE_string("sampler", None, "one of the process's samplers "
                                                "(default: the process's first)")
_STEPS = flags.DEFINE_integer("steps", None, "sampling steps (default: the run's "
                                            "train.sample_steps)")
_INPAINT = flags.DEFINE_string("inpaint", None, 'text runs: fill the [MASK] spans of a '
                                                'template, e.g. "the [MASK] sat on the [MASK]"')
_MASK_LENGTH = flags.DEFINE_integer("mask_length", 3, "text runs: characters per [MASK] span")
_PROMPT = flags.DEFINE_string("prompt", None, "caption-conditioned runs: draw every sample for "
                                              "this caption")
_CLASS = flags.DEFINE_integer("class", None, "conditional runs: draw every sample of this "
                                             "class (or caption id; default: each in turn)")
_COUNT = flags.DEFINE_integer("count", 64, "number of samples")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_TEMPERATURE = flags.DEFINE_float("temperature", None, "text samplers: divides the logits")
_TOP_P = flags.DEFINE_float("top_p", None, "text diffusion samplers: nucleus mass in (0, 1]")
_BLOCK_LENGTH = flags.DEFINE_integer("block_length", None, "masked runs: semi-autoregressive "
                                                           "blocks (ancestral, confidence)")
_REMASKING = flags.DEFINE_string("remasking", None, "masked runs, --sampler=remdm: cap | "
                                                    "rescale | conf")
_ETA = flags.DEFINE_float("eta", None, "masked runs, --sampler=remdm: ReMDM's eta")
_ORDER = flags.DEFINE_string("order", None, "masked runs, --sampler=confidence: confidence | "
                                            "random")
_CACHE = flags.DEFINE_bool("cache", None, "masked runs without time conditioning: skip the "
                                          "network after steps that changed nothing (MDLM)")
_OUT = flags.DEFINE_string("out", None, "output path without suffix "
                                        "(default DIR/samples_<process>_<sampler>_<steps>)")
flags.mark_flags_as_mutual_exclusive(["workdir", "pretrained"], required=True)


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    logging.set_verbosity(logging.WARNING)   # orbax logs every restore at INFO
    if _PRETRAINED.value is not None:
        return sample_pretrained(pathlib.Path(_PRETRAINED.value))
    workdir = pathlib.Path(_WORKDIR.value)
    run, state = train.restore_workdir(workdir)
    sampler = _SAMPLER.value or run.task.samplers[0]
    steps = _STEPS.value
    if steps is None and "num_steps" in run.task.sampler_options:
        steps = run.config.train.sample_steps
    options = {"guidance_scale": _GUIDANCE.value,
               "classes": None if _CLASS.value is None
               else np.full(_COUNT.value, _CLASS.value, np.int32),
               "prompts": None if _PROMPT.value is None else [_PROMPT.value] * _COUNT.value,
               "temperature": _TEMPERATURE.value, "top_p": _TOP_P.value,
               "block_length": _BLOCK_LENGTH.value, "remasking": _REMASKING.value,
               "eta": _ETA.value, "order": _ORDER.value, "cache": _CACHE.value}
    if _INPAINT.value is not None:
        if run.task.modality is not tasks.TEXT:
            raise app.UsageError("--inpaint fills a text template: it needs a text run")
        options["inpaint_mask"], options["inpaint_values"] = tasks.text.template_inpainting(
            _INPAINT.value, mask_length=_MASK_LENGTH.value, count=_COUNT.value,
            tokenizer=tasks.text.text_tokenizer(run.config))
    sample = train.make_sampler(run, sampler=sampler, num_steps=steps, count=_COUNT.value,
                                **options)
    samples = np.asarray(sample(jax.random.key(_SEED.value), state.ema_params))
    stem = pathlib.Path(_OUT.value or workdir / f"samples_{run.task.name}_{sampler}"
                                               f"_{steps or 'default'}")
    path = train.save_samples(run, stem, samples)
    np.savez(stem.with_suffix(".npz"), samples=samples, step=int(state.step))
    print(f"wrote {path} and {stem.with_suffix('.npz')} (step {int(state.step)})")


def sample_pretrained(folder: pathlib.Path):
    """``--pretrained``: samples of the pipeline's UNet, a PNG grid and an .npz."""
    if _PROMPT.value is not None or _INPAINT.value is not None:
        raise app.UsageError("--prompt and --inpaint need a text run, not a pretrained UNet")
    pipeline = pretrained.load_pipeline(folder)
    sampler = _SAMPLER.value or "ddim"
    classes = None if _CLASS.value is None else np.full(_COUNT.value, _CLASS.value, np.int32)
    sample = pipeline.sampler(count=_COUNT.value, sampler=sampler, num_steps=_STEPS.value,
                              guidance_scale=_GUIDANCE.value, classes=classes)
    samples = np.asarray(sample(jax.random.key(_SEED.value)))
    stem = pathlib.Path(_OUT.value or folder / f"samples_pretrained_{sampler}"
                                               f"_{_STEPS.value or 'default'}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = save_image_grid(stem.with_suffix(".png"), samples,
                           scale=max(1, 128 // samples.shape[1]))
    np.savez(stem.with_suffix(".npz"), samples=samples)
    ignored = pipeline.scheduler.diffusers_inference
    note = (f"; the scheduler's {ignored} place diffusers' steps, jaxdiff's come from "
            f"--sampler's spacing" if ignored else "")
    print(f"wrote {path} and {stem.with_suffix('.npz')}{note}")


if __name__ == "__main__":
    app.run(main)
