"""Evaluates a trained run: ``python experiments/evaluate.py --workdir DIR [flags]``.

Restores the newest checkpoint of DIR (EMA parameters) and writes ``DIR/eval/metrics.json``
and ``DIR/eval/metrics.md``; the Markdown is printed.

* Image runs (``--num_samples 1000 --sampler ddim --steps 50 --nll_examples N --nll_steps S
  --guidance G``): classifier FID/IS, Inception FID (when the weights are at hand), bits/dim
  by the VLB, reconstruction error and loss per timestep, and the class histogram of the
  samples; protocol in :mod:`jaxdiff.metrics.report`.
* Text runs (``--num_samples 64 --steps K --bound_samples 10 --examples 256
  --ar_workdir AR_DIR``): bits per character on the test split, token accuracy per
  timestep, samples with their generation time, distinct-n, self-BLEU and the generative
  perplexity under the autoregressive run AR_DIR; protocol in
  :mod:`jaxdiff.metrics.text_report`.
"""

from absl import app, flags

from jaxdiff import gaussian, perf, train
from jaxdiff.metrics import report, text_report

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", None,
                                    "samples to draw (default: 1000 images, 64 texts)")
_SAMPLER = flags.DEFINE_enum("sampler", "ddim", list(gaussian.SAMPLERS), "image sampler")
_STEPS = flags.DEFINE_integer("steps", None, "sampling steps (default: 50 for images, the "
                                             "run's train.sample_steps for text)")
_NLL_EXAMPLES = flags.DEFINE_integer("nll_examples", None,
                                     "test images for bits/dim (default: the whole test split)")
_NLL_STEPS = flags.DEFINE_integer("nll_steps", None,
                                  "respace the VLB chain to this many steps (default: full T)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of every key")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None,
                                   "compiled batch size (default: 500 images, 32 texts)")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_INCEPTION = flags.DEFINE_bool("inception", True, "compute the standard Inception FID")
_BOUND_SAMPLES = flags.DEFINE_integer("bound_samples", 10,
                                      "text: stratified terms of the diffusion bound")
_EXAMPLES = flags.DEFINE_integer("examples", 256, "text: test rows for bits per character")
_AR_WORKDIR = flags.DEFINE_string("ar_workdir", None,
                                  "text: an autoregressive run for generative perplexity")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    workdir = _WORKDIR.value
    if train.load_config(workdir).diffusion.process in train.config.TEXT_PROCESSES:
        result = text_report.evaluate_text_run(
            workdir, num_samples=_NUM_SAMPLES.value or 64, steps=_STEPS.value,
            bound_samples=_BOUND_SAMPLES.value, examples=_EXAMPLES.value, seed=_SEED.value,
            batch_size=_BATCH_SIZE.value or 32, ar_workdir=_AR_WORKDIR.value)
        paths = text_report.write_text_report(result, f"{workdir}/eval")
        print(text_report.text_report_markdown(result))
    else:
        result = report.evaluate_run(
            workdir, num_samples=_NUM_SAMPLES.value or 1000, sampler=_SAMPLER.value,
            steps=_STEPS.value or 50, nll_examples=_NLL_EXAMPLES.value,
            nll_steps=_NLL_STEPS.value, seed=_SEED.value, batch_size=_BATCH_SIZE.value or 500,
            guidance_scale=_GUIDANCE.value, inception=_INCEPTION.value)
        paths = report.write_report(result, f"{workdir}/eval")
        print(report.report_markdown(result))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    app.run(main)
