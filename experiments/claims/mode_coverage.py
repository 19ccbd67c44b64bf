r"""Claim 6: the unconditional diffusion model covers every mode of the data (no mode
collapse): the class histogram of its samples matches the data's.

The ``cosine-eps`` run of :mod:`claims._image_runs` (EMA parameters), :data:`NUM_SAMPLES`
DDIM-50 samples (``clip_x0=True``). The digits classifier
(:func:`jaxdiff.evaluation.train_or_load_classifier`, library defaults) labels the samples and the
1438 train digits (the data the model was trained on; the 359-image test split is reported too,
but its classes are far from balanced -- 27 zeros against 49 threes -- so it is not the
distribution the model learned); the two class histograms are compared by

* total variation :math:`\mathrm{TV} = \tfrac12\sum_k |p_k - q_k|`;
* Pearson's chi-square two-sample test of homogeneity (2 x 10 table, 9 degrees of freedom),
  its statistic and p-value (reported; with a model that is not perfect a small p-value is
  expected at large sample counts and does not by itself mean collapse);
* the ratio of each class's sample frequency to its data frequency.

The null reference for TV: the TV between two independent multinomial draws of the same sizes
from the data's histogram, simulated in ``check()`` (:data:`NULL_DRAWS` draws, fixed seed); its
95th percentile is reported by ``run()`` and recomputed by ``check()``.

Expected ("no mode collapse", criteria fixed before measuring): every class's sample frequency
within a factor :data:`RATIO_BOUND` of its data frequency (no missing or dominant mode), and
TV below :data:`TV_BOUND`.
"""

import pathlib
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "mode_coverage"
CLAIM = ("No mode collapse: the classifier's class histogram of unconditional samples matches "
         "the data's (every class present at a comparable frequency).")

RUN = "cosine-eps"
NUM_SAMPLES = 1000
SAMPLE_BATCH = 500
SAMPLER, SAMPLE_STEPS = "ddim", 50
SEED = 1          # other noise than claims 2 and 4
RATIO_BOUND = 2.0
TV_BOUND = 0.2
NULL_DRAWS = 20000


def null_tv_quantile(data_hist, n_samples: int, n_data: int, q: float = 0.95,
                     seed: int = 0) -> float:
    """The ``q`` quantile of TV between two multinomial draws (sizes ``n_samples`` and
    ``n_data``) from ``data_hist``."""
    rng = np.random.default_rng(seed)
    p = np.asarray(data_hist, np.float64)
    a = rng.multinomial(n_samples, p, size=NULL_DRAWS) / n_samples
    b = rng.multinomial(n_data, p, size=NULL_DRAWS) / n_data
    return float(np.quantile(0.5 * np.abs(a - b).sum(1), q))


def chi_square(counts_a, counts_b) -> tuple[float, float]:
    """Pearson's chi-square test of homogeneity of two count vectors: (statistic, p-value)."""
    from scipy import stats

    table = np.stack([counts_a, counts_b]).astype(np.float64)
    table = table[:, table.sum(0) > 0]
    stat, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(stat), float(p)


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    run_, state = runs.trained_run(RUN)
    sample = runs.sampler_fn(run_, sampler=SAMPLER, num_steps=SAMPLE_STEPS, count=SAMPLE_BATCH)
    images, _ = runs.draw(sample, state.ema_params, NUM_SAMPLES, batch=SAMPLE_BATCH, seed=SEED)
    data = jd.data.load(runs.DATASET, "train")
    test = runs.test_split()
    k = int(data.num_classes)
    sample_counts = np.bincount(runs.predicted_labels(images, clf), minlength=k)
    data_counts = np.bincount(runs.predicted_labels(data.images, clf), minlength=k)
    true_counts = np.bincount(np.asarray(data.labels), minlength=k)
    test_counts = np.bincount(runs.predicted_labels(test.images, clf), minlength=k)
    p, q = sample_counts / sample_counts.sum(), data_counts / data_counts.sum()
    stat, pvalue = chi_square(sample_counts, data_counts)
    figures = _plot(out_dir, p, q, true_counts / true_counts.sum())
    figures.append(runs.save_grid(out_dir / f"{NAME}_samples.png", images[:128]))
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "run": RUN, "info": runs.run_info(RUN), "num_samples": NUM_SAMPLES,
            "sampler": SAMPLER, "sample_steps": SAMPLE_STEPS, "clip_x0": True,
            "params": "EMA", "seed": SEED, "classifier": clf.name,
            "data": "digits:train, labelled by the classifier", "num_data": int(len(data)),
            "backend": jax.default_backend(), "jax_version": jax.__version__,
        },
        "tolerances": {"ratio_bound": RATIO_BOUND, "tv_bound": TV_BOUND},
        "sample_counts": sample_counts.tolist(),
        "data_counts": data_counts.tolist(),
        "data_true_label_counts": true_counts.tolist(),
        "total_variation": float(0.5 * np.abs(p - q).sum()),
        "total_variation_vs_true_labels": float(
            0.5 * np.abs(p - true_counts / true_counts.sum()).sum()),
        "null_tv_95th_percentile": null_tv_quantile(q, NUM_SAMPLES, int(len(data))),
        "test_split_counts": test_counts.tolist(),
        "total_variation_vs_test_split": float(
            0.5 * np.abs(p - test_counts / test_counts.sum()).sum()),
        "chi_square": {"statistic": stat, "dof": k - 1, "p_value": pvalue},
        "frequency_ratio": (p / q).tolist(),
        "figures": figures,
        "runtime_s": round(time.time() - start, 2),
    }


def _plot(out_dir, p, q, true) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(p))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    ax.bar(x - 0.27, p, 0.27, label=f"samples ({NUM_SAMPLES}, classifier)")
    ax.bar(x, q, 0.27, label="train digits (classifier)")
    ax.bar(x + 0.27, true, 0.27, label="train digits (true labels)")
    ax.set(xticks=x, xlabel="class", ylabel="fraction", title="class histogram")
    ax.legend(fontsize=7)
    return [save_figure(fig, out_dir, f"{NAME}_histogram.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        s = np.asarray(results["sample_counts"], np.float64)
        d = np.asarray(results["data_counts"], np.float64)
        p, q = s / s.sum(), d / d.sum()
        tv = 0.5 * np.abs(p - q).sum()
        if not np.isclose(tv, results["total_variation"], atol=1e-9):
            failures.append(f"recorded TV {results['total_variation']} is not {tv} from the "
                            "counts")
        null = null_tv_quantile(q, int(s.sum()), int(d.sum()))
        if not np.isclose(null, results["null_tv_95th_percentile"], atol=1e-9):
            failures.append("recorded null TV quantile differs from its recomputation")
        if not tv < TV_BOUND:
            failures.append(f"TV {tv:.3f} is not below {TV_BOUND}")
        for k, (pk, qk) in enumerate(zip(p, q, strict=True)):
            if qk > 0 and not (1 / RATIO_BOUND <= pk / qk <= RATIO_BOUND):
                failures.append(f"class {k}: sample frequency {pk:.3f} vs data {qk:.3f} "
                                f"(ratio {pk / qk:.2f} outside [1/{RATIO_BOUND:g}, "
                                f"{RATIO_BOUND:g}])")
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
