r"""The evaluation report of a trained image run: every metric, with its protocol, as JSON and
Markdown.

:func:`evaluate_run` restores the newest checkpoint of a workdir written by
:func:`jaxdiff.train.train`, takes its **EMA parameters** and measures:

* **samples**: ``num_samples`` images from ``sampler`` with ``steps`` steps (``clip_x0=True``,
  as the training loop samples), drawn in jitted batches of ``batch_size`` (the last batch is
  drawn whole and cut), batch ``i`` with key ``fold_in(fold_in(key(seed), 0), i)``;
* **classifier FID / classifier IS** (embedded datasets ``digits``, ``mnist_5k``,
  ``fashion_mnist`` only): the in-domain CNN of :func:`train_or_load_classifier` trained on
  the run's dataset at the run's image size (its default settings, cached), its accuracy on the
  test split, the Fréchet distance between its penultimate features of the samples and of the
  **whole test split** (reference statistics cached by :func:`cached_reference_stats` under
  ``dataset=<name>-<H>px``, ``split=test``, ``extractor=<classifier name>``), and the IS of the
  samples under its logits (10 splits). Two data-vs-data references come with them: the FID of
  ``min(num_samples, train size)`` train images (a fixed random subset) against the same test
  statistics (the floor at that sample count) and the IS of the test split;
* **Inception FID**: the standard FID (Inception-v3 pool features, NVLabs weights from
  :func:`load_inception_params`) of the samples, quantized to uint8 and resized to 299x299,
  against the whole test split (cached under ``extractor=inception-2015-12-05``). When the
  weights cannot be loaded the field is the string ``"unavailable: <why>"``;
* **bits/dim** (the run's task's ``evaluation.bits_per_dim``; for ``gaussian``
  :func:`jaxdiff.gaussian.nll_bits_per_dim` with ``method="vlb"``, an upper bound) on the
  first ``nll_examples`` test images (all by default), on the data's own grid (``num_bins`` =
  17 for ``digits``, whose intensities are 0..16; 256 otherwise), over the full chain of
  ``T`` steps or, with ``nll_steps``, a uniformly respaced chain of that many steps (a looser
  bound, quicker on a CPU); the reverse variance is the run's (``learned`` or ``beta``);
* **the continuous-time bound** (the task's ``evaluation.continuous_bound``, where it has
  one): VDM's bound on the same images, a second number beside bits/dim -- for ``gaussian``
  on its schedule as a path (tighter than the T-step VLB, claim 14), for ``flow`` / ``edm``
  an upper bound beside their ODE estimate; "unavailable: <why>" on a path whose clean end
  has sigma = 0 (rectified flow);
* **diagnostics** (the task's ``evaluation.diagnostics``; for ``gaussian``
  :func:`~jaxdiff.metrics.reconstruction_error` and
  :func:`~jaxdiff.metrics.loss_per_timestep`): MSE/PSNR of the one-step :math:`\hat x_0` and
  of a 20-step DDIM chain from :math:`x_t`, at :math:`t = \lfloor fT \rfloor` for ``f`` in
  0.1, 0.25, 0.5, 0.75, 0.9, and the run's training loss (prediction and weighting; fixed
  variance) in 10 equal buckets of ``[0, T)``, on the first ``diag_examples`` test images;
* **class histogram**: the fraction of samples the classifier assigns to each class against the
  label fractions of the test split, with their total-variation distance (a mode-collapse
  check).

:func:`write_report` writes ``<workdir>/eval/metrics.json`` and ``metrics.md``;
``experiments/evaluate.py`` is the command.
"""

import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdiff import train
from jaxdiff._validation import check_int
from jaxdiff.evaluation import common, scores
from jaxdiff.evaluation.classifier import train_or_load_classifier
from jaxdiff.evaluation.common import RestoredRun, format_value
from jaxdiff.metrics.paths import default_cache_dir
from jaxdiff.tasks.conditions import run_conditions

CLASSIFIER_DATASETS = ("digits", "mnist_5k", "fashion_mnist")
"""The datasets with an in-domain classifier (classifier FID/IS, class histogram)."""


def data_levels(dataset: str) -> int:
    """The number of intensity levels of ``dataset``'s grid in [-1, 1]: 17 for ``digits``
    (scikit-learn's intensities 0..16), 256 for 8-bit datasets (MNIST, Fashion-MNIST, TFDS)."""
    return 17 if dataset == "digits" else 256


# ----------------------------------------------------------------------------- pieces


def draw_samples(restored: RestoredRun, *, num_samples: int, sampler: str | None, steps: int,
                 seed: int, batch_size: int, guidance_scale: float | None = None,
                 progress: bool = True) -> np.ndarray:
    """``num_samples`` images ``[N, H, W, C]`` in [-1, 1] from the EMA parameters, drawn in
    jitted batches of ``batch_size`` (one compilation; the last batch is cut) and, for a
    latent run, decoded; ``sampler`` None is the run's task's default."""

    count = min(batch_size, num_samples)
    sample = train.make_sampler(restored.run, sampler=sampler, num_steps=steps, count=count,
                                guidance_scale=guidance_scale)
    key = jax.random.fold_in(jax.random.key(seed), 0)
    out = []
    with tqdm(total=num_samples, unit="img", desc=f"sample {sampler}/{steps}",
              disable=not progress) as bar:
        for i in range(math.ceil(num_samples / count)):
            images = np.asarray(restored.run.task.modality.to_pixels(
                restored.run, sample(jax.random.fold_in(key, i), restored.ema_params)))
            take = min(count, num_samples - i * count)
            out.append(images[:take])
            bar.update(take)
    return np.concatenate(out, axis=0)


def _conditions_of(restored: RestoredRun, labels: np.ndarray):
    """The network's condition of examples with ``labels`` (device arrays; None for an
    unconditional run)."""
    cond = run_conditions(restored.run).rows(labels)
    return None if cond is None else jax.tree.map(jnp.asarray, cond)


def _bits_per_dim(bpd, restored: RestoredRun, images: np.ndarray, labels: np.ndarray, *, key,
                  batch_size: int, progress: bool) -> np.ndarray:
    """Each image's bound in bits/dim by the task's jitted ``bpd(key, params, x0, cond)``,
    in batches."""
    n = images.shape[0]
    size = min(batch_size, n)
    out = []
    with tqdm(total=n, unit="img", desc="bits/dim", disable=not progress) as bar:
        for i, start in enumerate(range(0, n, size)):
            idx = np.arange(start, start + size) % n       # the last batch wraps around
            values = np.asarray(bpd(jax.random.fold_in(key, i), restored.ema_params,
                                    jnp.asarray(images[idx]),
                                    _conditions_of(restored, labels[idx])))
            take = min(size, n - start)
            out.append(values[:take])
            bar.update(take)
    return np.concatenate(out)


# ----------------------------------------------------------------------------- the report


def evaluate_run(workdir: str | os.PathLike | RestoredRun, *, num_samples: int = 1000,
                 sampler: str | None = None,
                 steps: int = 50, nll_examples: int | None = None, nll_steps: int | None = None,
                 seed: int = 0, batch_size: int = 500, diag_examples: int = 256,
                 guidance_scale: float | None = None, inception: bool = True,
                 inception_weights: str | os.PathLike | None = None,
                 classifier_steps: int = 600, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, on_update=None) -> dict:
    """Every metric of the trained image run in ``workdir`` (see the module docstring for the
    protocol), as a JSON-ready dict; :func:`write_report` stores it.

    Args:
      workdir: a run directory of :func:`jaxdiff.train.train` (``config.json``,
        ``checkpoints/``), whose newest readable checkpoint's EMA parameters are evaluated;
        or a :class:`~jaxdiff.evaluation.common.RestoredRun` (a pretrained pipeline:
        :func:`~jaxdiff.evaluation.common.pretrained_run`).
      num_samples: samples for FID/IS/histogram (>= 10, the IS splits).
      sampler, steps: one of the run's task's samplers (None: its default, ``ddim`` for
        ``gaussian``) and its steps.
      nll_examples: test images for bits/dim (the first ones); None: the whole test split.
      nll_steps: respace the bound's chain to this many uniform steps (>= 2, <= T); None:
        the full chain of ``T`` steps.
      seed: seeds every key (samples, bound, reconstruction, loss).
      batch_size: the compiled batch of sampling, the bound and feature extraction.
      diag_examples: test images for reconstruction and loss per timestep.
      guidance_scale: classifier-free guidance of conditional runs (None: none).
      inception: compute the standard Inception FID (False records it as disabled).
      inception_weights: the converted weights file (default: $JAXDIFF_INCEPTION_WEIGHTS or
        the cache).
      classifier_steps: training steps of the in-domain classifier (part of its cache key).
      cache_dir: root for the classifier (``classifiers/``) and reference statistics
        (``fid_stats/``); default the jaxdiff cache (:mod:`jaxdiff.metrics.paths`).
      progress: tqdm progress bars for the long passes.
      on_update: called with the report so far after each part (``experiments/evaluate.py``
        writes it, so that a stopped evaluation keeps what it measured).
    """
    num_samples = check_int("num_samples", num_samples, scores.IS_SPLITS)
    steps = check_int("steps", steps, 1)
    nll_examples = check_int("nll_examples", nll_examples, 1, optional=True)
    nll_steps = check_int("nll_steps", nll_steps, 2, optional=True)
    seed = check_int("seed", seed, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    diag_examples = check_int("diag_examples", diag_examples, 1)
    classifier_steps = check_int("classifier_steps", classifier_steps, 1)
    if guidance_scale is not None and not isinstance(guidance_scale, (int, float)):
        raise ValueError(f"guidance_scale must be None or a float, got {guidance_scale!r}")

    restored = workdir if isinstance(workdir, RestoredRun) else common.restore_run(workdir)
    run = restored.run
    if run.task.modality.name != "images":
        raise ValueError(f"workdir {str(restored.workdir)!r} holds a {run.task.name!r} run, "
                         f"whose report is the {run.task.modality.name!r} one; "
                         f"jaxdiff.evaluation.report_for(workdir) gives it")
    sampler = sampler if sampler is not None else run.task.samplers[0]
    name, image_size = run.config.data.name, run.config.data.image_size
    num_bins = data_levels(name)
    # Built first, so that a bad nll_steps fails before the samples are drawn.
    bpd_fn = run.task.evaluation.bits_per_dim(run, num_bins=num_bins, nll_steps=nll_steps)
    held_out = run.eval_dataset   # the test split: the latents of a latent run
    test = held_out if held_out.pixels is None else held_out.pixels
    train_pixels = run.dataset if run.dataset.pixels is None else run.dataset.pixels
    latent_why = (None if held_out.pixels is None else
                  f"unavailable: a latent run's bound and diagnostics are of the latents of "
                  f"{run.config.data.autoencoder!r}, not of the images")
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = jax.random.key(seed)
    timing: dict[str, float] = {}
    total_start = time.perf_counter()

    def timed(label, fn):
        start = time.perf_counter()
        value = fn()
        timing[label] = round(time.perf_counter() - start, 2)
        return value

    report: dict = {"workdir": str(restored.workdir), "step": restored.step, "dataset": name,
                    "image_shape": list(test.images.shape[1:]),
                    "conditional": run.num_classes is not None}
    protocol: dict = {
        "params": "EMA",
        "samples": {"num_samples": num_samples, "sampler": sampler, "steps": steps,
                    "clip_x0": run.task.evaluation.clip_x0(run),
                    "guidance_scale": guidance_scale, "seed": seed,
                    "batch_size": min(batch_size, num_samples)},
        "reference": {"dataset": name, "split": scores.REFERENCE_SPLIT, "size": int(len(test)),
                      "image_size": image_size},
    }
    report["protocol"] = protocol
    report["wall_seconds"] = timing

    def updated():
        if on_update is not None:
            on_update(report)

    samples = timed("samples", lambda: draw_samples(
        restored, num_samples=num_samples, sampler=sampler, steps=steps, seed=seed,
        batch_size=batch_size, guidance_scale=guidance_scale, progress=progress))
    if not np.all(np.isfinite(samples)):
        raise FloatingPointError(f"the samples of {workdir} hold non-finite values")

    # ---- classifier FID / IS and the class histogram
    if name in CLASSIFIER_DATASETS:
        def classifier_part():
            clf = train_or_load_classifier(name, image_size=image_size, steps=classifier_steps,
                                           cache_dir=root / "classifiers")
            train_images = train_pixels.images[scores.spread(len(train_pixels), num_samples)]
            results, protocol["classifier"] = scores.classifier_scores(
                clf, samples, test, train_images, dataset_name=name,
                cache_dir=root / "fid_stats", batch_size=batch_size, progress=progress)
            report.update(results)
        timed("classifier_metrics", classifier_part)
    else:
        why = (f"unavailable: no in-domain classifier for dataset {name!r} (only "
               f"{list(CLASSIFIER_DATASETS)})")
        report.update({"classifier_fid": why, "classifier_is_mean": why, "class_histogram": why})
    updated()

    # ---- standard Inception FID
    report["inception_fid"], inception_protocol = timed("inception_fid", lambda: (
        scores.inception_fid_or_why(samples, test, dataset_name=name, enabled=inception,
                                    weights=inception_weights, cache_dir=root / "fid_stats",
                                    batch_size=batch_size, progress=progress)))
    if inception_protocol is not None:
        protocol["inception"] = inception_protocol
    updated()

    if latent_why is not None:
        for field in ("bits_per_dim", "bits_per_dim_continuous_bound", "reconstruction",
                      "loss_per_timestep"):
            report[field] = latent_why
    else:
        _likelihood_and_diagnostics(restored, report, protocol, timed, updated, bpd_fn,
                                    key=key, num_bins=num_bins, nll_examples=nll_examples,
                                    nll_steps=nll_steps, diag_examples=diag_examples,
                                    batch_size=batch_size, progress=progress)
    timing["total"] = round(time.perf_counter() - total_start, 2)
    updated()
    return report


def _likelihood_and_diagnostics(restored: RestoredRun, report: dict, protocol: dict, timed,
                                updated, bpd_fn, *, key, num_bins: int,
                                nll_examples: int | None, nll_steps: int | None,
                                diag_examples: int, batch_size: int, progress: bool) -> None:
    """The report's bits/dim, continuous-time bound and diagnostics (pixel runs)."""
    run = restored.run
    test = run.eval_dataset
    # ---- bits/dim: the task's likelihood bound
    n_nll = len(test) if nll_examples is None else min(nll_examples, len(test))
    bpd = timed("bits_per_dim", lambda: _bits_per_dim(
        bpd_fn, restored, test.images[:n_nll], test.labels[:n_nll],
        key=jax.random.fold_in(key, 1), batch_size=batch_size, progress=progress))
    report["bits_per_dim"] = float(bpd.mean())
    report["bits_per_dim_stderr"] = float(bpd.std(ddof=1) / math.sqrt(len(bpd))) if len(
        bpd) > 1 else 0.0
    protocol["bits_per_dim"] = {
        "examples": int(n_nll), "split": scores.REFERENCE_SPLIT, "num_bins": num_bins,
        **run.task.evaluation.bits_per_dim_protocol(run, num_bins=num_bins,
                                                    nll_steps=nll_steps)}
    updated()

    # ---- the continuous-time bound beside it, where the process has one
    if run.task.evaluation.continuous_bound is not None:
        try:
            bound_fn, bound_protocol = run.task.evaluation.continuous_bound(
                run, num_bins=num_bins)
        except ValueError as err:
            report["bits_per_dim_continuous_bound"] = common.unavailable(err)
        else:
            bound = timed("bits_per_dim_continuous_bound", lambda: _bits_per_dim(
                bound_fn, restored, test.images[:n_nll], test.labels[:n_nll],
                key=jax.random.fold_in(key, 4), batch_size=batch_size, progress=progress))
            report["bits_per_dim_continuous_bound"] = float(bound.mean())
            report["bits_per_dim_continuous_bound_stderr"] = float(
                bound.std(ddof=1) / math.sqrt(len(bound))) if len(bound) > 1 else 0.0
            protocol["bits_per_dim_continuous_bound"] = {
                "examples": int(n_nll), "split": scores.REFERENCE_SPLIT, "num_bins": num_bins,
                **bound_protocol}
        updated()

    # ---- the task's diagnostics (reconstruction, loss per timestep)
    n_diag = min(diag_examples, len(test))
    x0 = jnp.asarray(test.images[:n_diag])
    cond = _conditions_of(restored, test.labels[:n_diag])
    results, diag_protocol = timed("diagnostics", lambda: run.task.evaluation.diagnostics(
        run, restored.ema_params, key, x0, cond))
    report.update(results)
    protocol["diagnostics"] = {"examples": int(n_diag), "split": scores.REFERENCE_SPLIT,
                               **diag_protocol}


# ----------------------------------------------------------------------------- output


def report_markdown(report: dict) -> str:
    """The report as Markdown: the headline metrics with their protocol, then the curves."""
    p = report["protocol"]
    s, ref = p["samples"], p["reference"]
    sample_desc = (f"{s['num_samples']} samples, {s['sampler']} {s['steps']} steps, "
                   f"EMA params, step {report['step']}")
    ref_desc = f"{ref['dataset']} {ref['split']} split ({ref['size']} images)"
    rows = []
    clf = p.get("classifier")
    if clf is not None:
        clf_desc = f"classifier {clf['name']} (test accuracy {clf['test_accuracy']:.4f})"
        rows += [
            ("classifier FID", report["classifier_fid"],
             f"{sample_desc} vs {ref_desc}; {clf_desc}"),
            ("classifier FID, train data vs test (floor)", report["classifier_fid_train_vs_test"],
             f"{clf['fid_floor_train_images']} train images (a fixed random subset) vs {ref_desc}"),
            ("classifier IS", report["classifier_is_mean"],
             f"{sample_desc}; {clf['is_splits']} splits; "
             f"std {format_value(report['classifier_is_std'])}"),
            ("classifier IS of the test data", report["classifier_is_test_data"], ref_desc),
            ("class histogram total variation", report["class_histogram"]["total_variation"],
             "classifier argmax of the samples vs test labels"),
            ("classifier test accuracy", clf["test_accuracy"], ref_desc),
        ]
    else:
        rows.append(("classifier FID/IS", report["classifier_fid"], ""))
    inc = p.get("inception")
    rows.append(("Inception FID", report["inception_fid"],
                 f"{sample_desc} vs {ref_desc}; {inc['extractor']}, {inc['input']}"
                 if inc else ""))
    b = p.get("bits_per_dim")
    if b is None:     # a latent run: the why in the value
        rows.append(("bits/dim", report["bits_per_dim"], ""))
    else:
        rows.append((b["label"], report["bits_per_dim"],
                     f"{b['examples']} {b['split']} images, {b['description']}, "
                     f"{b['num_bins']} levels; std err "
                     f"{format_value(report['bits_per_dim_stderr'])}"))
    c = p.get("bits_per_dim_continuous_bound")
    if c is not None:
        rows.append((c["label"], report["bits_per_dim_continuous_bound"],
                     f"{c['examples']} {c['split']} images, {c['description']}, "
                     f"{c['num_bins']} levels; std err "
                     f"{format_value(report['bits_per_dim_continuous_bound_stderr'])}"))
    elif "bits_per_dim_continuous_bound" in report:
        rows.append(("bits/dim (VDM bound)", report["bits_per_dim_continuous_bound"], ""))
    lines = [f"# Evaluation of `{report['workdir']}` (step {report['step']})", "",
             "| metric | value | protocol |", "|---|---|---|"]
    lines += [f"| {m} | {format_value(v)} | {d} |" for m, v, d in rows]
    if b is not None:
        lines += ["", f"bits/dim: {b['note']}."]
    if c is not None:
        lines += ["", f"VDM bound: {c['note']}."]
    lines += [""]
    if "diagnostics" in p:
        lines += _diagnostics_markdown(report, p["diagnostics"])
    hist = report["class_histogram"]
    if isinstance(hist, dict):
        lines += ["", "## Class histogram (fractions)", "", "| class | samples | test data |",
                  "|---|---|---|"]
        lines += [f"| {k} | {format_value(a)} | {format_value(c)} |"
                  for k, (a, c) in enumerate(zip(hist["samples"], hist["test_data"],
                                                 strict=True))]
    return "\n".join(lines + common.wall_time_lines(report))


def _diagnostics_markdown(report: dict, d: dict) -> list[str]:
    """The reconstruction and loss-per-timestep tables."""
    lines = [f"## Reconstruction ({d['examples']} {d['split']} images, clip_x0, "
             f"{d['chain_steps']}-step {d['chain_sampler']} chain)", "",
             "| t | MSE one-step | PSNR one-step (dB) | MSE chain | PSNR chain (dB) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['t']} | {format_value(r['mse_one_step'])} | "
              f"{format_value(r['psnr_one_step'])} | "
              f"{format_value(r['mse_chain'])} | {format_value(r['psnr_chain'])} |"
              for r in report["reconstruction"]]
    lines += ["", f"## Loss per timestep ({d['loss']})", "", "| t | loss |", "|---|---|"]
    lines += [f"| [{r['t_from']}, {r['t_to']}) | {format_value(r['loss'])} |"
              for r in report["loss_per_timestep"]]
    return lines


def write_report(report: dict, directory: str | os.PathLike) -> tuple[pathlib.Path,
                                                                       pathlib.Path]:
    """Writes the image report's ``metrics.json`` and ``metrics.md`` into ``directory``."""
    return common.write_files(report, directory, markdown=report_markdown)
