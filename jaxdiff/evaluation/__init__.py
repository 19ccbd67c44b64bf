"""The evaluation application: the report of a trained run, every number with its protocol.

``evaluate, markdown = evaluation.report_for(workdir)`` picks the report of the run's
modality (``run.task.modality.name``); ``report = evaluate(workdir, **options)`` restores
the run's newest EMA parameters and measures, and ``evaluation.write_files(report,
workdir + "/eval", markdown=markdown)`` stores ``metrics.json`` and ``metrics.md``
(``write_report`` / ``write_text_report`` are the same for one kind). The reports are
:func:`evaluate_run` for images (classifier FID/IS, Inception FID, bits/dim, diagnostics,
class histogram; :mod:`jaxdiff.evaluation.images`) and :func:`evaluate_text_run` for text
(bits per character, token accuracy, generation time, distinct-n, self-BLEU, generative
perplexity; :mod:`jaxdiff.evaluation.text`). What a process contributes to its report is
its task's ``evaluation`` (:mod:`jaxdiff.tasks`).
``experiments/evaluate.py`` is the command.

The in-domain classifier behind "classifier FID / IS" (:mod:`jaxdiff.evaluation.classifier`)
is trained here too, with its own small train step.
"""

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
from jaxdiff.evaluation.common import RestoredRun, format_value, restore_run, write_files
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

REPORTS = {"images": (evaluate_run, report_markdown),
           "text": (evaluate_text_run, text_report_markdown)}
"""The report of each modality: ``(evaluate(workdir, **options), markdown(report))``."""


def report_for(workdir):
    """``(evaluate, markdown)`` of the run in ``workdir``: its modality's report."""
    return REPORTS[get_task(load_config(workdir).diffusion.process).modality.name]


__all__ = [
    "ClassifierConfig", "ImageClassifier", "REPORTS", "RestoredRun", "TrainedClassifier",
    "bits_per_char", "classifier_accuracy", "classifier_fid", "classifier_name", "classifier_path",
    "classifier_reference_stats", "classifier_scores", "data_levels", "draw_samples",
    "draw_text_samples", "evaluate_run", "evaluate_text_run", "format_value", "init_classifier",
    "load_classifier", "report_for", "report_markdown", "restore_run", "sample_quality",
    "save_classifier", "text_report_markdown", "train_classifier", "train_or_load_classifier",
    "write_files", "write_report", "write_text_report",
]
