"""Evaluates a trained image run: ``python experiments/evaluate.py --workdir DIR
[--num_samples 1000 --sampler ddim --steps 50 --nll_examples N --nll_steps S --seed 0]``.

Restores the newest checkpoint of DIR (EMA parameters) and writes ``DIR/eval/metrics.json``
and ``DIR/eval/metrics.md``: classifier FID/IS, Inception FID (when the weights are at hand),
bits/dim by the VLB, reconstruction error and loss per timestep, and the class histogram of
the samples. The protocol is in :mod:`jaxdiff.metrics.report`; the Markdown is printed.
"""

from absl import app, flags

from jaxdiff import gaussian
from jaxdiff.metrics import report

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "samples for FID/IS/histogram")
_SAMPLER = flags.DEFINE_enum("sampler", "ddim", list(gaussian.SAMPLERS), "sampler")
_STEPS = flags.DEFINE_integer("steps", 50, "sampling steps")
_NLL_EXAMPLES = flags.DEFINE_integer("nll_examples", None,
                                     "test images for bits/dim (default: the whole test split)")
_NLL_STEPS = flags.DEFINE_integer("nll_steps", None,
                                  "respace the VLB chain to this many steps (default: full T)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of every key")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 500, "compiled batch size")
_GUIDANCE = flags.DEFINE_float("guidance", None, "classifier-free guidance scale")
_INCEPTION = flags.DEFINE_bool("inception", True, "compute the standard Inception FID")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    result = report.evaluate_run(
        _WORKDIR.value, num_samples=_NUM_SAMPLES.value, sampler=_SAMPLER.value,
        steps=_STEPS.value, nll_examples=_NLL_EXAMPLES.value, nll_steps=_NLL_STEPS.value,
        seed=_SEED.value, batch_size=_BATCH_SIZE.value, guidance_scale=_GUIDANCE.value,
        inception=_INCEPTION.value)
    json_path, md_path = report.write_report(result, f"{_WORKDIR.value}/eval")
    print(report.report_markdown(result))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    app.run(main)
