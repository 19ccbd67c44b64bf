"""Evaluates a trained run: ``python experiments/evaluate.py --workdir DIR [flags]``, or a
pretrained diffusers pipeline on a dataset: ``--pretrained DIR --data tfds:cifar10`` (the UNet
and its scheduler as a ``gaussian`` run, :func:`jaxdiff.evaluation.pretrained_run`; the
report goes to ``DIR/eval``).

Restores the newest checkpoint of DIR (EMA parameters) and writes ``DIR/eval/metrics.json``
and ``DIR/eval/metrics.md``; the Markdown is printed. ``metrics.json`` is rewritten after
each metric (marked ``"partial": true`` until the end), so a stopped evaluation keeps what it
measured; ``--quick`` is a short evaluation (see :data:`jaxdiff.evaluation.REPORTS`). The
report is the run's modality's (:mod:`jaxdiff.evaluation`); a flag left unset takes that
report's default, and a flag the report does not take is an error naming it.

* Image runs (``--num_samples 1000 --sampler ddim --steps 50 --nll_examples N --nll_steps S
  --guidance G --inception``): classifier FID/IS, Inception FID (when the weights are at
  hand), bits/dim, reconstruction error and loss per timestep, and the class histogram of
  the samples; protocol in :mod:`jaxdiff.evaluation.images`.
* Text runs (``--num_samples 64 --steps K --bound_samples 10 --examples 256
  --ar_workdir AR_DIR``): bits per character on the test split, token accuracy per
  timestep, samples with their generation time, distinct-n, self-BLEU and the generative
  perplexity under the autoregressive run AR_DIR; protocol in
  :mod:`jaxdiff.evaluation.text`.
* Autoencoder runs (``--examples N --seed S --inception``): reconstruction PSNR / MSE, KL,
  Inception and classifier rFID, and the latent scale 1 / std; protocol in
  :mod:`jaxdiff.evaluation.autoencoder`. A latent run's image report decodes its samples.
"""

import inspect
import json
import os
import pathlib

from absl import app, flags, logging

from jaxdiff import evaluation, perf

_WORKDIR = flags.DEFINE_string("workdir", None, "a training run's directory")
_PRETRAINED = flags.DEFINE_string("pretrained", None, "instead of --workdir: a diffusers "
                                                      "pipeline folder (UNet2DModel + "
                                                      "scheduler), evaluated on --data")
_DATA = flags.DEFINE_string("data", None, "with --pretrained: the image dataset (a data.name, "
                                          "e.g. tfds:cifar10) of the references and bits/dim")
# The report's arguments as flags (flag name, argument, kind, help); unset: its default.
_OPTIONS = {argument: define(flag, None, help) for flag, argument, define, help in (
    ("num_samples", "num_samples", flags.DEFINE_integer, "samples to draw"),
    ("sampler", "sampler", flags.DEFINE_string, "images: one of the process's samplers"),
    ("steps", "steps", flags.DEFINE_integer, "sampling steps"),
    ("nll_examples", "nll_examples", flags.DEFINE_integer,
     "images: test images for bits/dim (default: all)"),
    ("nll_steps", "nll_steps", flags.DEFINE_integer,
     "images: respace the bound's chain to this many steps (default: T)"),
    ("seed", "seed", flags.DEFINE_integer, "seed of every key (default 0)"),
    ("batch_size", "batch_size", flags.DEFINE_integer, "compiled batch size"),
    ("guidance", "guidance_scale", flags.DEFINE_float, "images: classifier-free guidance"),
    ("inception", "inception", flags.DEFINE_bool,
     "images: the standard Inception FID (default True)"),
    ("bound_samples", "bound_samples", flags.DEFINE_integer,
     "text: stratified terms of the diffusion bound"),
    ("examples", "examples", flags.DEFINE_integer,
     "text: test rows for bits/char; autoencoder: test images"),
    ("ar_workdir", "ar_workdir", flags.DEFINE_string,
     "text: an autoregressive run for generative perplexity"),
    ("mauve", "mauve", flags.DEFINE_bool,
     "text: MAUVE of the samples against test rows (needs mauve-text, faiss-cpu)"),
)}
_QUICK = flags.DEFINE_bool("quick", False, "a short evaluation (the report's quick options: "
                                           "fewer samples and examples, a coarser bound, no "
                                           "Inception pass); flags given still win")
flags.mark_flags_as_mutual_exclusive(["workdir", "pretrained"], required=True)


def _write_partial(report: dict, directory: pathlib.Path) -> None:
    """``metrics.json`` of the parts measured so far (atomic), marked ``"partial": true``."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / "metrics.json.partial"
    partial.write_text(json.dumps({**report, "partial": True}, indent=2) + "\n")
    os.replace(partial, directory / "metrics.json")


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    logging.set_verbosity(logging.WARNING)   # orbax logs every restore at INFO
    if (_PRETRAINED.value is None) != (_DATA.value is None):
        raise app.UsageError("--data goes with --pretrained (the dataset to evaluate on)")
    if _PRETRAINED.value is not None:
        workdir = _PRETRAINED.value
        source = evaluation.pretrained_run(workdir, data_name=_DATA.value)
        evaluate, markdown, quick = evaluation.REPORTS["images"]
    else:
        workdir = source = _WORKDIR.value
        evaluate, markdown, quick = evaluation.report_for(workdir)
    given = {name: flag.value for name, flag in _OPTIONS.items() if flag.value is not None}
    accepted = inspect.signature(evaluate).parameters
    unknown = sorted(_OPTIONS[name].name for name in given if name not in accepted)
    if unknown:
        raise app.UsageError(f"--{', --'.join(unknown)} do(es) not apply to the run in "
                             f"{workdir} ({evaluate.__name__})")
    options = {**(quick if _QUICK.value else {}), **given}
    out = pathlib.Path(workdir) / "eval"
    result = evaluate(source, **options, on_update=lambda report: _write_partial(report, out))
    paths = evaluation.write_files(result, out, markdown=markdown)
    print(markdown(result))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    app.run(main)
