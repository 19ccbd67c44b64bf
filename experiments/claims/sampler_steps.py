r"""Claim 4: deterministic samplers (DDIM, DPM-Solver++) reach good samples in far fewer steps
than ancestral sampling (Song et al. 2021, Table 1; Lu et al. 2022).

One model, the ``cosine-eps`` run of :mod:`claims._image_runs` (EMA parameters), sampled with
every sampler of :func:`jaxdiff.gaussian.sample` at several step counts (``clip_x0=True``):

* ``ddpm``: ancestral, fixed variance :math:`\beta_t`, uniformly respaced chain (improved
  DDPM's respacing) -- the DDIM paper's :math:`\eta = 1` baseline family;
* ``ddim``: :math:`\eta = 0`, uniform spacing;
* ``dpm_solver++``: 2M, log-SNR spacing;
* ``heun``: EDM's 2nd-order sampler, log-SNR spacing (two model calls per step but the last).
  Heun is reported, not part of the claim.

Every sample set is also scored clipped to [-1, 1] (``classifier_fid_output_clipped``,
identical to ``classifier_fid`` for a sampler that stays in range; results from before the
library's ``heun`` honoured ``clip_x0`` needed it).

For each: classifier FID of :data:`NUM_SAMPLES` samples against the test split, and the wall
time of one jitted batch of :data:`SAMPLE_BATCH` (mean of the batches after the compiling
one, 2 shared CPU cores).

The shape to see, from the DDIM paper on CIFAR-10 (FID, 50k samples): DDIM 13.36 / 6.84 / 4.67
at 10 / 20 / 50 steps against ancestral (:math:`\eta = 1`) 41.07 / 18.36 / 8.01; both
converge by 1000 steps (4.04 / 3.17 for :math:`\hat\sigma`). Expected here: DDIM and
DPM-Solver++ have a lower FID than ancestral at 10, 20 and 50 steps, and ancestral sampling
improves with steps (100 steps better than 10). Ancestral sampling at
1000 steps is measured in claim 3 (``learned_variance``, 128 samples).
"""

import pathlib
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "sampler_steps"
CLAIM = ("DDIM and DPM-Solver++ give much better samples than ancestral DDPM sampling at "
         "10-50 steps (Song et al. 2021, Table 1: CIFAR-10 FID 13.36 / 6.84 / 4.67 at "
         "10 / 20 / 50 steps vs 41.07 / 18.36 / 8.01 ancestral).")

RUN = "cosine-eps"
GRID = {"ddpm": (10, 20, 50, 100), "ddim": (10, 20, 50), "dpm_solver++": (10, 20, 50),
        "heun": (10, 20, 50)}
SPACING = {"ddpm": "uniform", "ddim": "uniform", "dpm_solver++": "log_snr",
           "heun": "log_snr"}
COMPARED_STEPS = (10, 20, 50)
FAST = ("ddim", "dpm_solver++")
NUM_SAMPLES = 500       # CPU budget; FID is biased upwards at 500 samples, alike for all
SAMPLE_BATCH = 250       # two batches: the second one is timed (the first compiles)
SEED = 0
PAPER_CIFAR10_FID = {"ddim": {"10": 13.36, "20": 6.84, "50": 4.67},
                     "ddpm_eta1": {"10": 41.07, "20": 18.36, "50": 8.01}}


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    run_, state = runs.trained_run(RUN)
    params = state.ema_params
    table, figures = {}, []
    for sampler, step_counts in GRID.items():
        table[sampler] = {}
        for steps in step_counts:
            sample = runs.sampler_fn(run_, sampler=sampler, num_steps=steps,
                                     count=SAMPLE_BATCH, spacing=SPACING[sampler])
            images, seconds = runs.draw(sample, params, NUM_SAMPLES, batch=SAMPLE_BATCH,
                                        seed=SEED)
            finite = bool(np.all(np.isfinite(images)))
            table[sampler][str(steps)] = {
                "classifier_fid": runs.classifier_fid(images, clf) if finite else float("nan"),
                # the same samples clipped to the data range [-1, 1]: differs from the above
                # only where a sampler leaves the range
                "classifier_fid_output_clipped": runs.classifier_fid(
                    np.clip(np.nan_to_num(images), -1, 1), clf),
                "max_abs_pixel": float(np.max(np.abs(images))),
                "seconds_per_batch": round(seconds, 3),
            }
            print(f"[{NAME}] {sampler} {steps}: {table[sampler][str(steps)]}", flush=True)
            if steps == 10 or (sampler == "ddpm" and steps == 100):
                figures.append(runs.save_grid(out_dir / f"{NAME}_{sampler}_{steps}.png",
                                              images[:64]))
    figures += _plot(out_dir, table)
    train_images = np.asarray(jd.data.load(runs.DATASET, "train").images[:NUM_SAMPLES])
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "run": RUN, "info": runs.run_info(RUN), "num_samples": NUM_SAMPLES,
            "sample_batch": SAMPLE_BATCH, "spacing": SPACING, "ddpm_variance": "beta",
            "ddim_eta": 0.0, "clip_x0": True, "params": "EMA", "seed": SEED,
            "classifier": clf.name, "fid_reference": "digits:test (359 images)",
            "backend": jax.default_backend(), "jax_version": jax.__version__,
            "timing": "wall seconds of one batch, the mean of the batches after the compiling one",
        },
        "paper_cifar10_fid": PAPER_CIFAR10_FID,
        "table": table,
        "data_floor_classifier_fid": runs.classifier_fid(train_images, clf),
        "figures": figures,
        "runtime_s": round(time.time() - start, 2),
    }


def _plot(out_dir, table) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fid, ax_time) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for sampler, rows in table.items():
        steps = [int(s) for s in rows]
        ax_fid.plot(steps, [rows[s]["classifier_fid_output_clipped"] for s in rows], "o-",
                    label=sampler + (" (output clipped)" if sampler == "heun" else ""))
        ax_time.plot(steps, [rows[s]["seconds_per_batch"] for s in rows], "o-", label=sampler)
    ax_fid.set(xscale="log", yscale="log", xlabel="sampling steps", ylabel="classifier FID",
               title="quality vs steps (digits)")
    ax_time.set(xscale="log", yscale="log", xlabel="sampling steps",
                ylabel=f"s per batch of {SAMPLE_BATCH}", title="wall time (2 CPU cores)")
    for ax in (ax_fid, ax_time):
        ax.grid(alpha=0.3, which="both")
    ax_fid.legend()
    return [save_figure(fig, out_dir, f"{NAME}_curves.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        t = results["table"]
        for sampler in ("ddpm",) + FAST:      # heun is reported, not part of the claim
            for steps in GRID[sampler]:
                fid = t[sampler][str(steps)]["classifier_fid"]
                if not (np.isfinite(fid) and fid >= 0):
                    failures.append(f"{sampler} {steps}: FID {fid} is not finite")
        for steps in COMPARED_STEPS:
            ancestral = t["ddpm"][str(steps)]["classifier_fid"]
            for sampler in FAST:
                fid = t[sampler][str(steps)]["classifier_fid"]
                if not fid < ancestral:
                    failures.append(f"{steps} steps: {sampler} FID {fid:.2f} is not below "
                                    f"ancestral {ancestral:.2f}")
        if not t["ddpm"]["100"]["classifier_fid"] < t["ddpm"]["10"]["classifier_fid"]:
            failures.append("ancestral sampling does not improve from 10 to 100 steps")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
