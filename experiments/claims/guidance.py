r"""Claim 5: classifier-free guidance trades diversity for fidelity to the requested class:
as the guidance scale grows, samples are classified as their class more often and are less
diverse (Ho & Salimans 2022, Fig. 1 and Sec. 4).

The ``cosine-conditional`` run of :mod:`claims._image_runs` (class labels fed to the UNet,
label dropout 0.1 to a null class) sampled with DDIM-50 (``clip_x0=True``, EMA parameters) at
guidance scales :data:`SCALES` in the library's convention
:math:`\hat\epsilon = \epsilon_c + w(\epsilon_c - \epsilon_u)` (``w = 0``: the plain
conditional model), :data:`NUM_SAMPLES` samples with classes round robin (50 per class), the
same noise for every scale:

* **accuracy**: the fraction of samples that the digits classifier
  (:func:`jaxdiff.evaluation.train_or_load_classifier`, library defaults) assigns to their
  requested class, with its binomial standard error;
* **diversity**: the mean pairwise Euclidean distance between samples of the same class, in
  pixels (64 dimensions in [-1, 1]), averaged over the classes; and the same in the
  classifier's feature space. The test split's own within-class diversity is the reference;
* classifier FID against the test split.

Expected: accuracy at the largest scale above accuracy at ``w = 0`` by more than
:data:`Z` standard errors, and never falling by more than :data:`Z` standard errors from one
scale to the next; pixel diversity strictly falling from each scale to the next.
"""

import pathlib
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "guidance"
CLAIM = ("Classifier-free guidance: as the guidance scale grows, samples match their "
         "requested class more often (classifier accuracy rises) and are less diverse "
         "(Ho & Salimans 2022).")

RUN = "cosine-conditional"
SCALES = (0.0, 1.0, 2.0, 4.0)
NUM_SAMPLES = 500
SAMPLE_BATCH = 500
SAMPLER, SAMPLE_STEPS = "ddim", 50
SEED = 0
Z = 2.0


def within_class_diversity(vectors, labels, num_classes: int) -> float:
    """Mean over classes of the mean pairwise Euclidean distance between members."""
    vectors = np.asarray(vectors, np.float64).reshape(len(vectors), -1)
    means = []
    for k in range(num_classes):
        v = vectors[labels == k]
        if len(v) < 2:
            continue
        sq = np.sum(v**2, 1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * v @ v.T, 0.0)
        n = len(v)
        means.append(np.sqrt(d2)[np.triu_indices(n, 1)].mean())
    return float(np.mean(means))


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    features = clf.features_fn()
    run_, state = runs.trained_run(RUN)
    num_classes = run_.num_classes
    requested = np.arange(SAMPLE_BATCH) % num_classes
    rows, figures, grid_rows = {}, [], []
    for scale in SCALES:
        sample = runs.sampler_fn(run_, sampler=SAMPLER, num_steps=SAMPLE_STEPS,
                                 count=SAMPLE_BATCH, cond=requested, guidance_scale=scale)
        images, _ = runs.draw(sample, state.ema_params, NUM_SAMPLES, batch=SAMPLE_BATCH,
                              seed=SEED)
        labels = np.tile(requested, -(-NUM_SAMPLES // SAMPLE_BATCH))[:NUM_SAMPLES]
        predicted = runs.predicted_labels(images, clf)
        acc = float(np.mean(predicted == labels))
        feats = np.asarray(jd.metrics.features.extract_features(features, images,
                                                                batch_size=500))
        rows[str(scale)] = {
            "accuracy": acc,
            "accuracy_stderr": float(np.sqrt(acc * (1 - acc) / NUM_SAMPLES)),
            "pixel_diversity": within_class_diversity(images, labels, num_classes),
            "feature_diversity": within_class_diversity(feats, labels, num_classes),
            "classifier_fid": runs.classifier_fid(images, clf),
        }
        print(f"[{NAME}] w={scale}: {rows[str(scale)]}", flush=True)
        order = np.argsort(labels[:100], kind="stable")       # 10 per class, class-major
        grid_rows.append(images[:100][order].reshape(10, 10, *images.shape[1:])[:, :8])
    # One figure: rows = classes 0..9, column blocks = scales (8 samples each).
    grid = np.concatenate(grid_rows, axis=1)         # [10, 8 * scales, H, W, C]
    figures.append(runs.save_grid(out_dir / f"{NAME}_samples.png",
                                  grid.reshape(-1, *grid.shape[2:]), columns=grid.shape[1]))
    figures += _plot(out_dir, rows)
    test = runs.test_split()
    test_feats = np.asarray(jd.metrics.features.extract_features(features, test.images,
                                                                 batch_size=500))
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "run": RUN, "info": runs.run_info(RUN), "scales": list(SCALES),
            "guidance": "eps_c + w (eps_c - eps_u)", "num_samples": NUM_SAMPLES,
            "sampler": SAMPLER, "sample_steps": SAMPLE_STEPS, "clip_x0": True,
            "params": "EMA", "seed": SEED, "classifier": clf.name,
            "backend": jax.default_backend(), "jax_version": jax.__version__,
        },
        "tolerances": {"z": Z},
        "scales": rows,
        "test_split_reference": {
            "classifier_accuracy": float(np.mean(runs.predicted_labels(test.images, clf)
                                                 == test.labels)),
            "pixel_diversity": within_class_diversity(test.images, test.labels, num_classes),
            "feature_diversity": within_class_diversity(test_feats, test.labels, num_classes),
        },
        "figures": figures,
        "figure_notes": {f"{NAME}_samples.png": (
            "rows: classes 0-9; column blocks of 8: guidance scales "
            + ", ".join(f"{s:g}" for s in SCALES) + " (same noise per position)")},
        "runtime_s": round(time.time() - start, 2),
    }


def _plot(out_dir, rows) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [float(s) for s in rows]
    fig, (ax_acc, ax_div) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    ax_acc.errorbar(scales, [r["accuracy"] for r in rows.values()],
                    yerr=[r["accuracy_stderr"] for r in rows.values()], fmt="o-")
    ax_acc.set(xlabel="guidance scale w", ylabel="classifier accuracy",
               title="samples classified as requested")
    ax_div.plot(scales, [r["pixel_diversity"] for r in rows.values()], "o-")
    ax_div.set(xlabel="guidance scale w", ylabel="mean within-class distance (pixels)",
               title="diversity")
    for ax in (ax_acc, ax_div):
        ax.grid(alpha=0.3)
    return [save_figure(fig, out_dir, f"{NAME}_curves.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        rows = results["scales"]
        keys = [str(s) for s in SCALES]
        acc = [rows[k]["accuracy"] for k in keys]
        n = results["setup"]["num_samples"]
        se = [np.sqrt(a * (1 - a) / n) for a in acc]      # recomputed, not read back
        top = np.hypot(se[0], se[-1])
        if not acc[-1] - acc[0] > Z * top:
            failures.append(f"accuracy at w={SCALES[-1]:g} ({acc[-1]:.3f}) is not above "
                            f"w=0 ({acc[0]:.3f}) by {Z} standard errors ({Z * top:.3f})")
        for i in range(1, len(keys)):
            if acc[i] < acc[i - 1] - Z * np.hypot(se[i], se[i - 1]):
                failures.append(f"accuracy falls from w={keys[i - 1]} ({acc[i - 1]:.3f}) to "
                                f"w={keys[i]} ({acc[i]:.3f}) by more than {Z} standard errors")
        div = [rows[k]["pixel_diversity"] for k in keys]
        for i in range(1, len(keys)):
            if not div[i] < div[i - 1]:
                failures.append(f"pixel diversity does not fall from w={keys[i - 1]} "
                                f"({div[i - 1]:.3f}) to w={keys[i]} ({div[i]:.3f})")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
