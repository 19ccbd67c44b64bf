r"""Claim 3: learning the reverse variance with L_hybrid improves the log-likelihood, and
keeps sample quality at few sampling steps, where fixed variances degrade (Nichol & Dhariwal
2021, Sec. 3.1 and 4, Fig. 8).

Two runs of :mod:`claims._image_runs` with the same cosine schedule, UNet and budget:
``cosine-eps`` (L_simple; fixed variance :math:`\beta_t` or :math:`\tilde\beta_t` chosen at
sampling time) and ``cosine-hybrid`` (``learned_variance=True``: L_simple + 0.001 L_vlb, the
variance an interpolation :math:`\exp(v\log\beta_t + (1 - v)\log\tilde\beta_t)`).

* **bits/dim**: the VLB over the full chain of 1000 steps (the protocol of
  :func:`jaxdiff.gaussian.nll_bits_per_dim`) on the first :data:`NUM_BPD_IMAGES` test digits
  on their 17-level grid, for fixed :math:`\beta_t`, fixed :math:`\tilde\beta_t` and learned.
  The same noise draws for every model and variance, so the differences are paired per image.
* **sample quality**: classifier FID of ancestral (``ddpm``) samples at 1000 steps
  (:data:`NUM_SAMPLES` = 128 samples, for the CPU budget) and at 50 respaced steps (500
  samples) against the test split, for the same three variances. FID at 128 samples is
  strongly biased upwards; only comparisons at the same sample count mean anything.

Expected (improved DDPM): learned variance gives lower bits/dim than the better fixed variance
at 1000 steps (by more than :data:`Z` paired standard errors), and at 50 steps a lower FID
than both fixed variances. If the measurement goes the other way, ``check()`` says so.
"""

import pathlib
import time

import jax
import numpy as np

from claims import _image_runs as runs

NAME = "learned_variance"
CLAIM = ("Learned variance with L_hybrid gives better bits/dim than fixed variance (beta_t, "
         "beta-tilde_t) and better sample quality with few (50) ancestral steps (Nichol & "
         "Dhariwal 2021).")

# (label, run, sampling/bound variance)
MODELS = (("fixed beta", "cosine-eps", "beta"),
          ("fixed beta_tilde", "cosine-eps", "beta_tilde"),
          ("learned (L_hybrid)", "cosine-hybrid", "learned"))
STEPS = (1000, 50)
NUM_SAMPLES = {1000: 128, 50: 500}    # CPU budget: 1000 ancestral steps cost 1000 model calls
NUM_BPD_IMAGES = 100
SEED = 0
Z = 2.0


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    values, results, figures, timing = {}, {}, [], {}
    by_run = {}
    for label, run_name, variance in MODELS:
        by_run.setdefault(run_name, []).append((label, variance))
    for run_name, members in by_run.items():
        run_, state = runs.trained_run(run_name)
        params = state.ema_params
        t0 = time.time()
        bpd = runs.bits_per_dim(run_, params, variances=[v for _, v in members],
                                num_images=NUM_BPD_IMAGES, seed=SEED)
        timing[f"{run_name} bits/dim"] = round(time.time() - t0, 1)
        for label, variance in members:
            values[label] = bpd[variance]
            entry = {"run": run_name, "variance": variance, "info": runs.run_info(run_name),
                     "bits_per_dim": runs.summary(bpd[variance]), "classifier_fid": {}}
            for steps in STEPS:
                t0 = time.time()
                count = NUM_SAMPLES[steps]
                sample = runs.sampler_fn(run_, sampler="ddpm", num_steps=steps, count=count,
                                         variance=variance)
                images, _ = runs.draw(sample, params, count, batch=count, seed=SEED)
                timing[f"{label} samples {steps}"] = round(time.time() - t0, 1)
                entry["classifier_fid"][str(steps)] = runs.classifier_fid(images, clf)
                figures.append(runs.save_grid(out_dir / f"{NAME}_{variance}_{steps}.png",
                                              images[:64]))
            print(f"[{NAME}] {label}: {entry['bits_per_dim']} {entry['classifier_fid']}",
                  flush=True)
            results[label] = entry
    learned = MODELS[2][0]
    differences = {label: runs.paired(values[learned], values[label])
                   for label, _, _ in MODELS[:2]}
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "num_bpd_images": NUM_BPD_IMAGES, "num_bins": runs.NUM_BINS, "T": 1000,
            "bound": "vlb over all 1000 steps", "sampler": "ddpm (ancestral)",
            "sample_steps": list(STEPS),
            "num_samples": {str(k): v for k, v in NUM_SAMPLES.items()},
            "clip_x0": True, "params": "EMA", "seed": SEED, "classifier": clf.name,
            "backend": jax.default_backend(), "jax_version": jax.__version__,
        },
        "tolerances": {"z": Z},
        "models": results,
        "bits_per_dim_difference_learned_minus_fixed": differences,
        "timing_s": timing,
        "figures": figures,
        "figure_notes": {f"{NAME}_<variance>_<steps>.png": "64 ancestral samples"},
        "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        m = results["models"]
        learned = MODELS[2][0]
        fixed = [label for label, _, _ in MODELS[:2]]
        diffs = results["bits_per_dim_difference_learned_minus_fixed"]
        for label in fixed:
            got = m[learned]["bits_per_dim"]["mean"] - m[label]["bits_per_dim"]["mean"]
            d = diffs[label]
            if not np.isclose(d["mean"], got, rtol=1e-6, atol=1e-9):
                failures.append(f"recorded difference vs {label} {d['mean']:.5g} is not "
                                f"{got:.5g}")
            if not (d["mean"] < 0 and -d["mean"] > Z * d["stderr"]):
                ours = m[learned]["bits_per_dim"]["mean"]
                theirs = m[label]["bits_per_dim"]["mean"]
                failures.append(f"bits/dim: learned {ours:.4f} is not below "
                                f"{label} {theirs:.4f} by {Z} standard errors (difference "
                                f"{d['mean']:.4f} +- {d['stderr']:.4f})")
        fid_learned = m[learned]["classifier_fid"]["50"]
        for label in fixed:
            if not fid_learned < m[label]["classifier_fid"]["50"]:
                failures.append(f"FID at 50 ancestral steps: learned {fid_learned:.2f} is not "
                                f"below {label} {m[label]['classifier_fid']['50']:.2f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
