"""The trained digits models that claims 2-7, 12 and 13 share: train once, reuse everywhere.

Each named run is ``experiments/configs/digits_cpu.py`` (the main job's 0.70M-parameter UNet,
batch 64, lr 2e-3, EMA 0.995) shortened to :data:`NUM_STEPS` steps, with one change:

==========================  =========================================================
run                         change from digits_cpu
==========================  =========================================================
``cosine-eps``              none (cosine schedule, eps prediction, L_simple)
``linear-eps``              ``diffusion.schedule = "linear"``
``cosine-hybrid``           ``diffusion.learned_variance = True`` (L_hybrid, Nichol &
                            Dhariwal 2021: L_simple + 0.001 L_vlb, learned interpolation)
``cosine-conditional``      ``data.conditional = True``, ``diffusion.label_dropout = 0.1``
                            (classifier-free guidance training, Ho & Salimans 2022)
``flow``                    ``digits_cpu.py:flow``: rectified flow, velocity prediction,
                            SD3's logit-normal times (the process's defaults)
``edm``                     ``digits_cpu.py:edm``: EDM's preconditioning, log-normal
                            sigmas, EDM weighting (the defaults)
==========================  =========================================================

:func:`trained_run` trains a run through :func:`jaxdiff.train.train` into
``<root>/<run>`` (``root`` defaults to ``workdirs/claims`` at the repository root, which git
ignores; ``JAXDIFF_CLAIMS_WORKDIR`` overrides it) unless that workdir already holds the final
checkpoint, then restores it with :func:`jaxdiff.train.restore_workdir`. Training is
deterministic (the README's main job gave bit-identical metrics twice), so a rerun from an
empty cache should give the same models. Measured here: 6-9 minutes per run on 2 CPU cores
shared with other jobs (3.9-5.6 steps/s; the runs' ``metrics.jsonl`` hold them). A file lock
per run keeps two claims from training the same run at once. To train all four up front:
``cd experiments && python -m claims._image_runs [RUN ...]``.

:func:`classifier` is the in-domain classifier of :mod:`jaxdiff.evaluation.classifier` with its
defaults (trained once, cached), and :func:`classifier_fid` the classifier FID of a sample
set against the digits' test split, with the reference statistics cached.
"""

import copy
import fcntl
import math
import os
import pathlib
import sys
import time

import jax
import numpy as np
from configs import digits_cpu  # experiments/configs/digits_cpu.py (experiments/ on the path)

import jaxdiff as jd
from jaxdiff import evaluation, metrics

_REPO = pathlib.Path(__file__).resolve().parents[2]

NUM_STEPS = 2000
DATASET = "digits"

RUNS = {
    "cosine-eps": {},
    "linear-eps": {"diffusion": {"schedule": "linear"}},
    "cosine-hybrid": {"diffusion": {"learned_variance": True}},
    "cosine-conditional": {"data": {"conditional": True}, "diffusion": {"label_dropout": 0.1}},
    "flow": {"process": "flow"},
    "edm": {"process": "edm"},
}


def default_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("JAXDIFF_CLAIMS_WORKDIR", _REPO / "workdirs" / "claims"))


def run_config(name: str) -> dict:
    """The nested config dict of run ``name`` (digits_cpu with the run's changes)."""
    if name not in RUNS:
        raise ValueError(f"unknown run {name!r}; known: {sorted(RUNS)}")
    changes = dict(RUNS[name])
    values = copy.deepcopy(digits_cpu.get_config(changes.pop("process", "gaussian")).to_dict())
    values["train"].update(num_steps=NUM_STEPS, checkpoint_every=NUM_STEPS // 2,
                           eval_every=NUM_STEPS // 2)
    for section, fields in changes.items():
        values[section].update(fields)
    return values


def _finished(workdir: pathlib.Path) -> bool:
    return (workdir / "checkpoints" / str(NUM_STEPS)).exists()


def trained_run(name: str, root: str | os.PathLike | None = None):
    """``(run, state)`` of run ``name``, training it first unless its workdir is complete."""
    return cached_run(name, run_config(name), root=root)


def cached_run(name: str, values: dict, *, root: str | os.PathLike | None = None,
               prepare=None):
    """``(run, state)`` of the run of config ``values`` in ``<root>/<name>``, trained first
    unless that workdir is complete (a claim's own run); ``prepare()``, if given, runs under
    the run's lock before training (e.g. writing the data it trains on)."""
    workdir = pathlib.Path(root if root is not None else default_root()) / name
    if workdir.joinpath("config.json").exists():
        # fields added since the run was recorded read as their defaults
        recorded, wanted = (jd.train.with_process_defaults(c) for c in
                            (jd.train.load_config(workdir), jd.train.from_dict(values)))
        if recorded != wanted:
            raise ValueError(f"{workdir} holds a run with another config; remove it")
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir.parent / f".{name}.lock", "w") as lock:   # one trainer per run
        fcntl.flock(lock, fcntl.LOCK_EX)
        if prepare is not None:
            prepare()
        if not _finished(workdir):
            print(f"[_image_runs] training {name} for {NUM_STEPS} steps in {workdir}",
                  flush=True)
            jd.train.train(jd.train.from_dict(values), workdir, progress=False)
    return jd.train.restore_workdir(workdir)


def run_info(name: str, root=None) -> dict:
    """The run's settings and last logged numbers, for the results files."""
    workdir = pathlib.Path(root if root is not None else default_root()) / name
    lines = jd.train.read_metrics(workdir)
    evals = [m for m in lines if "eval_loss" in m]
    speeds = [m["steps_per_second"] for m in lines if "steps_per_second" in m]
    return {"run": name, "changes_from_digits_cpu": RUNS[name], "train_steps": NUM_STEPS,
            "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
            "median_steps_per_second": float(np.median(speeds)) if speeds else None}


def sampler_fn(run, *, sampler: str, num_steps: int, count: int, variance: str | None = None,
               guidance_scale: float | None = None, cond=None, spacing: str = "uniform",
               inpaint_mask=None, inpaint_values=None):
    """A jitted ``sample(key, params) -> images`` (EMA parameters go in ``params``):
    :func:`jaxdiff.train.make_sampler` with the claims' options (``cond`` are the classes
    of a conditional run)."""
    return jd.train.make_sampler(run, sampler=sampler, num_steps=num_steps, count=count,
                                 variance=variance, guidance_scale=guidance_scale,
                                 classes=cond, spacing=spacing, inpaint_mask=inpaint_mask,
                                 inpaint_values=inpaint_values)


def denoise_fn(run, params):
    """The run's ``denoise_fn(x_t, t, cond=None)`` bound to ``params``."""
    return jd.models.bind(run.apply_fn(), params)


def classifier():
    """The in-domain digits classifier (library defaults; trained once, then cached)."""
    return evaluation.train_or_load_classifier(DATASET)


def test_split():
    return jd.data.load(DATASET, "test")


def classifier_fid(samples, clf=None) -> float:
    """Classifier FID of ``samples`` against the digits' test split (359 images)."""
    clf = clf or classifier()
    ref = evaluation.classifier_reference_stats(clf, test_split(), dataset_name=DATASET)
    return float(evaluation.classifier_fid(clf, np.asarray(samples), ref))


def predicted_labels(samples, clf=None) -> np.ndarray:
    clf = clf or classifier()
    logits = metrics.features.extract_features(clf.logits_fn(), np.asarray(samples),
                                               batch_size=500)
    return np.argmax(np.asarray(logits), axis=1)


if __name__ == "__main__":   # cd experiments && python -m claims._image_runs [RUN ...]
    for run_name in sys.argv[1:] or list(RUNS):
        trained_run(run_name)


# ----------------------------------------------------------------------------- measurements

NUM_BINS = evaluation.data_levels(DATASET)   # the digits' intensities are 0..16


def bits_per_dim(run, params, *, variances, num_images: int, seed: int = 0,
                 num_buckets: int | None = None, clip_x0: bool = False) -> dict:
    """Per-image VLB bits/dim ``{variance: [num_images]}`` of the first ``num_images`` test
    digits on their 17-level grid, over the full chain of T steps: the protocol of
    :func:`jaxdiff.gaussian.nll_bits_per_dim` (``method="vlb"``; term ``i`` draws its
    :math:`x_t` with ``fold_in(key, i)``), written out so that one model call per step serves
    every reverse variance in ``variances`` (``beta``, ``beta_tilde``, ``learned``). The same
    ``seed`` gives the same noise for every model (paired comparisons);
    ``tests/test_reproduce.py`` checks it against ``nll_bits_per_dim``.

    With ``num_buckets``, also ``{"<variance>/buckets": [num_buckets + 1]}``: the mean over
    images of the bound's terms summed over ``num_buckets`` equal ranges of steps (L_0 in the
    first, ...), then the prior term L_T last, in bits/dim; they add up to the mean total;
    and ``{"<variance>/last_step": float}``, the mean term L_{T-1} (the last reverse step).
    ``clip_x0`` is improved DDPM's estimator (x0_hat clipped in every reverse step)."""
    test = test_split()
    x0 = jax.numpy.asarray(test.images[:num_images])
    cond = jax.numpy.asarray(test.labels[:num_images], jax.numpy.int32) if (
        run.num_classes is not None) else None
    variances = tuple(variances)
    terms = np.asarray(_vlb_terms_bpd(jax.random.key(seed), denoise_fn(run, params),
                                      run.process, x0, cond, variances=variances,
                                      prediction=run.task.setting(run.config, "prediction"),
                                      clip_x0=clip_x0))
    out = dict(zip(variances, terms.sum(0), strict=True))
    if num_buckets:
        steps = terms.shape[0] - 1
        for k, variance in enumerate(variances):
            per_step = terms[:steps, k].mean(-1)
            out[f"{variance}/buckets"] = [float(b.sum()) for b in
                                          np.array_split(per_step, num_buckets)] + [
                                              float(terms[steps, k].mean())]
            out[f"{variance}/last_step"] = float(terms[steps - 1, k].mean())
    return out


def _vlb_bpd(key, denoise_fn, schedule, x0, cond, *, variances, prediction, clip_x0=False):
    """``[V, B]`` bits/dim; see :func:`bits_per_dim`."""
    return _vlb_terms_bpd(key, denoise_fn, schedule, x0, cond, variances=variances,
                          prediction=prediction, clip_x0=clip_x0).sum(0)


def _vlb_terms_bpd(key, denoise_fn, schedule, x0, cond, *, variances, prediction,
                   clip_x0=False):
    """``[T + 1, V, B]``: the bound's terms L_0 .. L_{T-1}, then L_T, in bits/dim
    (:func:`jaxdiff.gaussian.vlb_terms` for each variance, the same noise for each)."""
    @jax.jit
    def terms(key, x0, cond):
        return jax.numpy.stack([
            jd.gaussian.vlb_terms(key, denoise_fn, schedule, x0, prediction=prediction,
                                  variance=v, num_bins=NUM_BINS, cond=cond, clip_x0=clip_x0)
            for v in variances], axis=1)

    return jd.bits_per_unit(terms(key, x0, cond), math.prod(x0.shape[1:]))


def summary(values) -> dict:
    """Mean and standard error of per-image values."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()),
            "stderr": float(values.std(ddof=1) / np.sqrt(len(values)))}


def paired(a, b) -> dict:
    """Mean and standard error of the per-image difference ``a - b``."""
    return summary(np.asarray(a, np.float64) - np.asarray(b, np.float64))


def draw(sample, params, count: int, *, batch: int, seed: int = 0):
    """``count`` images from a :func:`sampler_fn` of batch ``batch`` and the wall time in
    seconds of the draws after the first (compiling) call."""
    key = jax.random.key(seed)
    first = np.asarray(sample(jax.random.fold_in(key, 0), params))
    out, start = [first], time.perf_counter()
    for i in range(1, -(-count // batch)):
        out.append(np.asarray(sample(jax.random.fold_in(key, i), params)))
    seconds = time.perf_counter() - start
    per_batch = seconds / max(len(out) - 1, 1)
    return np.concatenate(out)[:count], per_batch


def save_grid(path, images, *, columns: int = 16, scale: int = 4) -> str:
    jd.data.save_image_grid(path, np.asarray(images), scale=scale, columns=columns)
    return pathlib.Path(path).name
