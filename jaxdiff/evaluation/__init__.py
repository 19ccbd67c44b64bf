"""The evaluation application: the report of a trained run, every number with its protocol.

``evaluate, markdown, quick = evaluation.report_for(workdir)`` picks the report of the
run's modality (``run.task.modality.name``); ``report = evaluate(workdir, **options)`` restores
the run's newest EMA parameters and measures, and ``evaluation.write_files(report,
workdir + "/eval", markdown=markdown)`` stores ``metrics.json`` and ``metrics.md``
(``write_report`` / ``write_text_report`` are the same for one kind). The reports are
:func:`evaluate_run` for images (classifier FID/IS, Inception FID, bits/dim, diagnostics,
class histogram; :mod:`jaxdiff.evaluation.images`), :func:`evaluate_text_run` for text
(bits per character, token accuracy, generation time, distinct-n, self-BLEU, generative
perplexity; :mod:`jaxdiff.evaluation.text`) and :func:`evaluate_autoencoder_run` for an
autoencoder (PSNR, KL, rFID, the latent scale; :mod:`jaxdiff.evaluation.autoencoder`).
What a process contributes to its report is its task's ``evaluation`` (:mod:`jaxdiff.tasks`).
``experiments/evaluate.py`` is the command.

The in-domain classifier behind "classifier FID / IS" (:mod:`jaxdiff.evaluation.classifier`)
is trained here too, with its own small train step.
"""

from collections.abc import Callable
from typing import NamedTuple

from jaxdiff.evaluation.autoencoder import (
    autoencoder_report_markdown,
    evaluate_autoencoder_run,
    write_autoencoder_report,
)
from jaxdiff.evaluation.classifier import (
    ClassifierConfig,
    ImageClassifier,
    TrainedClassifier,
    classifier_accuracy,
    classifier_name,
    classifier_path,
    init_classifier,
    load_classifier,
    save_classifier,
    train_classifier,
    train_or_load_classifier,
)
from jaxdiff.evaluation.common import (
    RestoredRun,
    format_value,
    pretrained_run,
    restore_run,
    write_files,
)
from jaxdiff.evaluation.images import (
    data_levels,
    draw_samples,
    evaluate_run,
    report_markdown,
    write_report,
)
from jaxdiff.evaluation.scores import (
    classifier_fid,
    classifier_reference_stats,
    classifier_scores,
)
from jaxdiff.evaluation.text import (
    bits_per_char,
    draw_text_samples,
    evaluate_text_run,
    sample_quality,
    text_report_markdown,
    write_text_report,
)
from jaxdiff.tasks import get_task
from jaxdiff.train import load_config


class Report(NamedTuple):
    """A modality's report: ``evaluate(workdir, **options) -> dict``, ``markdown(report)``,
    and ``quick``, the options of a short evaluation (``experiments/evaluate.py --quick``:
    fewer samples and examples, a coarser bound, no Inception pass)."""

    evaluate: Callable
    markdown: Callable
    quick: dict


REPORTS = {
    "images": Report(evaluate_run, report_markdown,
                     # the full chain: a respaced one is a far looser bound (49 vs 3.7
                     # bits/dim on the main job at 100 steps)
                     quick=dict(num_samples=200, nll_examples=64, diag_examples=64,
                                inception=False)),
    "text": Report(evaluate_text_run, text_report_markdown,
                   quick=dict(num_samples=16, examples=64, bound_samples=2)),
    "autoencoder": Report(evaluate_autoencoder_run, autoencoder_report_markdown,
                          quick=dict(examples=256, scale_examples=256, inception=False)),
}


def report_for(workdir) -> Report:
    """The report of the run in ``workdir``: its modality's."""
    return REPORTS[get_task(load_config(workdir).diffusion.process).modality.name]


__all__ = [
    "ClassifierConfig", "ImageClassifier", "REPORTS", "Report", "RestoredRun", "TrainedClassifier",
    "autoencoder_report_markdown", "bits_per_char", "classifier_accuracy", "classifier_fid",
    "classifier_name", "classifier_path", "classifier_reference_stats", "classifier_scores",
    "data_levels", "draw_samples", "draw_text_samples", "evaluate_autoencoder_run", "evaluate_run",
    "evaluate_text_run", "format_value", "init_classifier", "load_classifier", "pretrained_run",
    "report_for", "report_markdown", "restore_run", "sample_quality", "save_classifier",
    "text_report_markdown", "train_classifier", "train_or_load_classifier",
    "write_autoencoder_report", "write_files", "write_report", "write_text_report",
]
