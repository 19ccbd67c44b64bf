r"""Claim 2: the cosine schedule gives a lower negative log-likelihood (bits/dim) than the
linear one, for the same model and training budget (Nichol & Dhariwal 2021, Sec. 3.2).

Two runs of :mod:`claims._image_runs` that differ only in ``diffusion.schedule``:
``cosine-eps`` and ``linear-eps`` (digits_cpu's UNet, eps prediction, L_simple,
:data:`_image_runs.NUM_STEPS` steps, EMA parameters). For each:

* **bits/dim**: the VLB over the full chain of T = 1000 steps
  (:func:`jaxdiff.gaussian.nll_bits_per_dim`, ``method="vlb"``) on the first
  :data:`NUM_BPD_IMAGES` test digits on their 17-level grid, with the fixed reverse
  variances :math:`\beta_t` (the sampler's) and
  :math:`\tilde\beta_t`; the same noise draws for both models, so the difference is paired
  per image and its standard error is that of the per-image differences;
* **sample quality**: classifier FID (:mod:`jaxdiff.evaluation.classifier`, the digits CNN with
  the library's defaults) of :data:`NUM_SAMPLES` DDIM-50 samples against the test split, with
  the data floor (the first :data:`NUM_SAMPLES` train images against the same statistics);
* where the bound's difference lies: its terms summed over 10 ranges of 100 steps
  (:math:`L_0` is in the first), then the prior term :math:`L_T`, and the last reverse step's
  term :math:`L_{T-1}` alone, in bits/dim;
* the same bound as improved DDPM evaluates it (``clip_x0=True``: :math:`\hat x_0` clipped
  to [-1, 1] in every reverse step, the bound of the model that clipped sampling draws from;
  a different estimator, reported beside the pre-stated one, which stays unclipped).

Expected (the claim's direction): cosine's bits/dim below linear's, by more than
:data:`Z` standard errors of the paired difference, for both fixed variances. Sample quality
has no expected direction here (the paper's gain in FID comes with L_hybrid, claim 3); it is
reported.
"""

import pathlib
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "schedule_comparison"
CLAIM = ("With the same model and training budget, the cosine noise schedule gives lower "
         "bits/dim (VLB) than the linear one (Nichol & Dhariwal 2021, Sec. 3.2); sample "
         "quality (classifier FID) is reported alongside.")

RUNS = ("cosine-eps", "linear-eps")
VARIANCES = ("beta", "beta_tilde")
NUM_SAMPLES = 1000
NUM_BUCKETS = 10         # the bound's terms summed over 10 ranges of 100 steps, then L_T
NUM_BPD_IMAGES = 100     # the first 100 test digits (the full bound costs 1000 model calls)
SAMPLE_BATCH = 500
SAMPLER, SAMPLE_STEPS = "ddim", 50
SEED = 0
Z = 2.0        # the paired difference must exceed Z standard errors


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    train_images = np.asarray(jd.data.load(runs.DATASET, "train").images[:NUM_SAMPLES])
    per_run, bpd_values, grids = {}, {}, []
    for name in RUNS:
        run_, state = runs.trained_run(name)
        params = state.ema_params
        entry = {"info": runs.run_info(name), "bits_per_dim": {}}
        values = runs.bits_per_dim(run_, params, variances=VARIANCES,
                                   num_images=NUM_BPD_IMAGES, seed=SEED,
                                   num_buckets=NUM_BUCKETS)
        entry["bits_per_dim_by_step_range"] = {v: values[f"{v}/buckets"] for v in VARIANCES}
        entry["bits_per_dim_last_step"] = {v: values[f"{v}/last_step"] for v in VARIANCES}
        for variance in VARIANCES:
            bpd_values[name, variance] = values[variance]
            entry["bits_per_dim"][variance] = runs.summary(values[variance])
        clipped = runs.bits_per_dim(run_, params, variances=VARIANCES,
                                    num_images=NUM_BPD_IMAGES, seed=SEED, clip_x0=True)
        entry["bits_per_dim_clipped_x0"] = {}
        for variance in VARIANCES:
            bpd_values[name, variance, "clipped"] = clipped[variance]
            entry["bits_per_dim_clipped_x0"][variance] = runs.summary(clipped[variance])
        sample = runs.sampler_fn(run_, sampler=SAMPLER, num_steps=SAMPLE_STEPS,
                                 count=SAMPLE_BATCH)
        images, _ = runs.draw(sample, params, NUM_SAMPLES, batch=SAMPLE_BATCH, seed=SEED)
        entry["classifier_fid"] = runs.classifier_fid(images, clf)
        per_run[name] = entry
        grids.append(runs.save_grid(out_dir / f"{NAME}_{name}.png", images[:64], columns=16))
    grids += _plot_terms(out_dir, per_run)
    differences = {v: runs.paired(bpd_values["cosine-eps", v], bpd_values["linear-eps", v])
                   for v in VARIANCES}
    clipped_differences = {v: runs.paired(bpd_values["cosine-eps", v, "clipped"],
                                          bpd_values["linear-eps", v, "clipped"])
                           for v in VARIANCES}
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "dataset": "digits:test (bits/dim), digits:test (FID reference)",
            "num_test_images": int(len(bpd_values[RUNS[0], VARIANCES[0]])),
            "num_bins": runs.NUM_BINS, "T": 1000, "bound": "vlb over all 1000 steps",
            "num_samples": NUM_SAMPLES, "sampler": SAMPLER, "sample_steps": SAMPLE_STEPS,
            "clip_x0": True, "params": "EMA", "seed": SEED, "classifier": clf.name,
            "backend": jax.default_backend(), "jax_version": jax.__version__,
        },
        "tolerances": {"z": Z},
        "runs": per_run,
        "bits_per_dim_difference_cosine_minus_linear": differences,
        "bits_per_dim_clipped_x0_difference_cosine_minus_linear": clipped_differences,
        "data_floor_classifier_fid": runs.classifier_fid(train_images, clf),
        "figures": grids,
        "figure_notes": {f"{NAME}_<run>.png": f"64 of the {SAMPLER}-{SAMPLE_STEPS} samples"},
        "runtime_s": round(time.time() - start, 2),
    }


def _plot_terms(out_dir, per_run) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    labels = [f"{100 * i}-{100 * i + 99}" for i in range(NUM_BUCKETS)] + ["L_T"]
    x = np.arange(len(labels))
    for k, (name, entry) in enumerate(per_run.items()):
        ax.bar(x + (k - 0.5) * 0.4, entry["bits_per_dim_by_step_range"]["beta"], 0.4,
               label=name)
    ax.set(xticks=x, ylabel="bits/dim", yscale="log",
           title="VLB terms by step range (variance beta_t)")
    ax.set_xticklabels(labels, rotation=45, fontsize=7)
    ax.legend()
    return [save_figure(fig, out_dir, f"{NAME}_terms.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        r = results["runs"]
        diffs = results["bits_per_dim_difference_cosine_minus_linear"]
        for variance in VARIANCES:
            cos = r["cosine-eps"]["bits_per_dim"][variance]["mean"]
            lin = r["linear-eps"]["bits_per_dim"][variance]["mean"]
            d = diffs[variance]
            if not np.isclose(d["mean"], cos - lin, rtol=1e-6, atol=1e-9):
                failures.append(f"{variance}: recorded difference {d['mean']:.5g} is not "
                                f"cosine - linear = {cos - lin:.5g}")
            if not (d["mean"] < 0 and -d["mean"] > Z * d["stderr"]):
                failures.append(f"{variance}: cosine bits/dim {cos:.4f} is not below linear "
                                f"{lin:.4f} by {Z} standard errors (difference {d['mean']:.4f}"
                                f" +- {d['stderr']:.4f})")
        for name in RUNS:
            fid = r[name]["classifier_fid"]
            if not (np.isfinite(fid) and fid >= 0):
                failures.append(f"{name}: classifier FID {fid} is not a finite non-negative "
                                "number")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
