r"""The evaluation report of a trained autoencoder: how well it reconstructs, and its latents.

:func:`evaluate_autoencoder_run` restores the newest checkpoint of an ``autoencoder`` run
(:mod:`jaxdiff.tasks.autoencoder`), takes its **EMA parameters** and measures, on the first
``examples`` test images (all by default), their reconstructions ``decode(mean of q(z | x))``:

* **MSE, L1 and PSNR** (:math:`10 \log_{10}(4 / \mathrm{MSE})` per image, data in [-1, 1];
  the mean over images, and the PSNR of the mean MSE);
* **KL** of the posterior to :math:`\mathcal N(0, I)` per image and per latent value (nats);
* **rFID**: the Inception FID of the reconstructions against the whole test split
  (:func:`~jaxdiff.evaluation.scores.inception_fid_or_why`), and on the embedded
  single-item datasets the classifier FID under the in-domain classifier and the
  classifier's accuracy on the reconstructions beside its accuracy on the originals;
* **the latent scale**: the std of ``z ~ q(z | x)`` over ``scale_examples`` training images
  (a fixed random subset) and LDM's scaling factor 1 / std
  (:func:`~jaxdiff.tasks.autoencoder.latent_scale`), what a latent diffusion run on this
  autoencoder uses.
"""

import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import tasks
from jaxdiff._validation import check_int
from jaxdiff.data.arrays import ArrayDataset
from jaxdiff.evaluation import common, scores
from jaxdiff.evaluation.classifier import classifier_accuracy, train_or_load_classifier
from jaxdiff.evaluation.common import RestoredRun, format_value
from jaxdiff.evaluation.images import CLASSIFIER_DATASETS
from jaxdiff.metrics.diagnostics import psnr
from jaxdiff.metrics.paths import default_cache_dir
from jaxdiff.models.autoencoder import posterior_kl
from jaxdiff.models.functional import count_params, make_autoencoder_fns
from jaxdiff.tasks.autoencoder import SCALE_EXAMPLES, latent_scale, reconstruct_fn


def _batched(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(fn(jnp.asarray(images[i:i + batch_size])))
                           for i in range(0, len(images), batch_size)])


def evaluate_autoencoder_run(workdir: str | os.PathLike | RestoredRun, *,
                             examples: int | None = None, scale_examples: int = SCALE_EXAMPLES,
                             seed: int = 0, batch_size: int = 500, inception: bool = True,
                             inception_weights: str | os.PathLike | None = None,
                             classifier_steps: int = 600,
                             cache_dir: str | os.PathLike | None = None,
                             progress: bool = True, on_update=None) -> dict:
    """Every number of the module docstring for the autoencoder run in ``workdir``, as a
    JSON-ready dict (``on_update(report)`` after each part)."""
    examples = check_int("examples", examples, 1, optional=True)
    scale_examples = check_int("scale_examples", scale_examples, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    restored = workdir if isinstance(workdir, RestoredRun) else common.restore_run(workdir)
    run, params = restored.run, restored.ema_params
    if run.task is not tasks.AUTOENCODER:
        raise ValueError(f"workdir {str(restored.workdir)!r} holds a {run.task.name!r} run, "
                         f"not an autoencoder")
    name = run.config.data.name
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    test = run.eval_dataset
    n = len(test) if examples is None else min(examples, len(test))
    originals = test.images[:n]
    timing: dict[str, float] = {}
    start = time.perf_counter()
    encode, _ = make_autoencoder_fns(run.graphdef, run.rest)
    reconstruct = reconstruct_fn(run)
    recon = _batched(lambda x: reconstruct(params, x), originals, batch_size)
    mean, log_variance = (np.concatenate(parts) for parts in zip(*[
        jax.tree.map(np.asarray, encode(params, jnp.asarray(originals[i:i + batch_size])))
        for i in range(0, n, batch_size)], strict=True))
    timing["reconstruct"] = round(time.perf_counter() - start, 2)
    err = (recon.astype(np.float64) - originals)
    mse = np.mean(np.square(err), axis=(1, 2, 3))
    kl = np.asarray(posterior_kl(jnp.asarray(mean), jnp.asarray(log_variance)), np.float64)
    report: dict = {
        "workdir": str(restored.workdir), "step": restored.step, "dataset": name,
        "image_shape": list(originals.shape[1:]), "latent_shape": list(mean.shape[1:]),
        "parameters": count_params(params),
        "mse": float(mse.mean()), "l1": float(np.abs(err).mean()),
        "psnr": float(np.mean(np.asarray(psnr(mse)))),
        "psnr_of_mean_mse": float(psnr(mse.mean())),
        "kl_per_image": float(kl.mean()), "kl_per_latent_value": float(kl.mean() / mean[0].size)}
    protocol: dict = {"params": "EMA", "examples": int(n), "split": scores.REFERENCE_SPLIT,
                      "reconstruction": "decode(posterior mean)"}
    report["protocol"], report["wall_seconds"] = protocol, timing

    def updated():
        if on_update is not None:
            on_update(report)

    updated()
    scale_rows = scores.spread(len(run.dataset), scale_examples)
    t0 = time.perf_counter()
    report["latent_scale"], report["latent_std"] = latent_scale(
        lambda x: encode(params, x), run.dataset.images[scale_rows], key=jax.random.key(seed),
        batch_size=batch_size)
    timing["latent_scale"] = round(time.perf_counter() - t0, 2)
    protocol["latent_scale"] = {"examples": int(len(scale_rows)), "split": "train",
                                "seed": seed, "what": "1 / std of z ~ q(z | x), all values"}
    updated()

    t0 = time.perf_counter()
    report["rfid_inception"], inception_protocol = scores.inception_fid_or_why(
        recon, test, dataset_name=name, enabled=inception, weights=inception_weights,
        cache_dir=root / "fid_stats", batch_size=batch_size, progress=progress)
    if inception_protocol is not None:
        protocol["inception"] = inception_protocol
    timing["rfid_inception"] = round(time.perf_counter() - t0, 2)
    updated()

    if name in CLASSIFIER_DATASETS:
        t0 = time.perf_counter()
        clf = train_or_load_classifier(name, image_size=run.config.data.image_size,
                                       steps=classifier_steps, cache_dir=root / "classifiers")
        reference = scores.classifier_reference_stats(clf, test, dataset_name=name,
                                                      cache_dir=root / "fid_stats",
                                                      batch_size=batch_size)
        report["rfid_classifier"] = scores.classifier_fid(clf, recon, reference,
                                                          batch_size=batch_size)
        for label, images in (("reconstructions", recon.astype(np.float32).clip(-1, 1)),
                              ("originals", originals)):
            report[f"classifier_accuracy_{label}"] = classifier_accuracy(
                clf, ArrayDataset(images=images, labels=test.labels[:n],
                                  num_classes=test.num_classes), batch_size=batch_size)
        protocol["classifier"] = {"name": clf.name, "trained_on": f"{name}:train"}
        timing["classifier"] = round(time.perf_counter() - t0, 2)
    else:
        why = (f"unavailable: no in-domain classifier for dataset {name!r} (only "
               f"{list(CLASSIFIER_DATASETS)})")
        report["rfid_classifier"] = report["classifier_accuracy_reconstructions"] = why
    timing["total"] = round(time.perf_counter() - start, 2)
    updated()
    return report


def autoencoder_report_markdown(report: dict) -> str:
    """The report as Markdown: one table of the numbers with their protocol."""
    p = report["protocol"]
    rows = [("PSNR (dB, mean over images)", report["psnr"]),
            ("PSNR of the mean MSE (dB)", report["psnr_of_mean_mse"]),
            ("MSE", report["mse"]), ("L1", report["l1"]),
            ("KL per image (nats)", report["kl_per_image"]),
            ("KL per latent value (nats)", report["kl_per_latent_value"]),
            ("rFID (Inception)", report["rfid_inception"]),
            ("rFID (classifier)", report["rfid_classifier"]),
            ("classifier accuracy, reconstructions",
             report["classifier_accuracy_reconstructions"]),
            ("latent std", report["latent_std"]),
            ("latent scale (1 / std)", report["latent_scale"])]
    if "classifier_accuracy_originals" in report:
        rows.insert(9, ("classifier accuracy, originals",
                        report["classifier_accuracy_originals"]))
    lines = [f"# Autoencoder report: {report['workdir']}", "",
             f"{report['dataset']} {p['split']} split, first {p['examples']} images, "
             f"{p['reconstruction']}, EMA params, step {report['step']}; image "
             f"{report['image_shape']} -> latent {report['latent_shape']}, "
             f"{report['parameters']:,} parameters. Latent scale from "
             f"{p['latent_scale']['examples']} training images.", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {label} | {format_value(value)} |" for label, value in rows]
    return "\n".join(lines + common.wall_time_lines(report))


def write_autoencoder_report(report: dict, directory: str | os.PathLike):
    """Writes ``metrics.json`` and ``metrics.md`` into ``directory`` (created)."""
    return common.write_files(report, directory, markdown=autoencoder_report_markdown)
