r"""Claim 13: flow matching and EDM reach good samples in fewer network calls than
eps-prediction DDPM (Esser et al. 2024, Fig. 3; Karras et al. 2022, Fig. 2).

Three runs of :mod:`claims._image_runs` on the same UNet, data and budget (2000 steps of
digits_cpu): ``cosine-eps`` (DDPM, cosine schedule, eps prediction), ``flow`` (rectified
flow, velocity prediction, logit-normal times) and ``edm`` (EDM preconditioning, log-normal
sigmas). Each is sampled with two samplers suited to it at several step counts (EMA
parameters; each process's default x0 clipping: clipped for DDPM as Ho et al. sample, not
for flow and EDM, as their papers sample), and the number of network calls (NFE) is
recorded:

* ``cosine-eps``: ``ddim`` and ``dpm_solver++`` (log-SNR spacing), one call per step;
* ``flow``: ``euler`` (one call per step) and ``heun`` (two per step but the last);
* ``edm``: ``heun`` on EDM's rho = 7 grid and ``euler`` on it.

Classifier FID of :data:`NUM_SAMPLES` samples against the test split, and the wall time of
one batch. Expected before the run (EDM Fig. 2, SD3 Fig. 3): at a budget of <= 8 NFE the
best flow and the best EDM sampler have a lower FID than the best DDPM one; at 32 NFE the
three are close.
"""

import pathlib
import time

import jax
import numpy as np

from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "process_comparison"
CLAIM = ("Flow matching (rectified flow) and EDM give better samples than eps-prediction "
         "DDPM at low numbers of network calls (<= 8 NFE) on the same network and budget "
         "(Karras et al. 2022, Fig. 2; Esser et al. 2024, Fig. 3).")

# run -> sampler -> (steps, ...); NFE per sampler in _nfe
GRID = {"cosine-eps": {"ddim": (4, 8, 16, 32), "dpm_solver++": (4, 8, 16, 32)},
        "flow": {"euler": (4, 8, 16, 32), "heun": (2, 4, 8, 16)},
        "edm": {"heun": (2, 4, 8, 16), "euler": (4, 8, 16, 32)}}
SPACING = {"ddim": "uniform", "dpm_solver++": "log_snr"}
LOW_NFE = 8
BASELINE, CHALLENGERS = "cosine-eps", ("flow", "edm")
NUM_SAMPLES = 500
SAMPLE_BATCH = 250
SEED = 0


def _nfe(sampler: str, steps: int) -> int:
    return 2 * steps - 1 if sampler in ("heun", "midpoint") else steps


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    table, figures, info = {}, [], {}
    for name, samplers in GRID.items():
        run_, state = runs.trained_run(name)
        info[name] = runs.run_info(name)
        table[name] = {}
        for sampler, step_counts in samplers.items():
            table[name][sampler] = {}
            for steps in step_counts:
                sample = runs.sampler_fn(run_, sampler=sampler, num_steps=steps,
                                         count=SAMPLE_BATCH, spacing=SPACING.get(sampler))
                images, seconds = runs.draw(sample, state.ema_params, NUM_SAMPLES,
                                            batch=SAMPLE_BATCH, seed=SEED)
                finite = bool(np.all(np.isfinite(images)))
                table[name][sampler][str(steps)] = {
                    "nfe": _nfe(sampler, steps),
                    "classifier_fid": runs.classifier_fid(images, clf) if finite
                    else float("nan"),
                    "seconds_per_batch": round(seconds, 3)}
                print(f"[{NAME}] {name} {sampler} {steps}: {table[name][sampler][str(steps)]}",
                      flush=True)
                if steps == step_counts[1]:
                    figures.append(runs.save_grid(
                        out_dir / f"{NAME}_{name}_{sampler}_{steps}.png", images[:64]))
    figures += _plot(out_dir, table)
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"runs": info, "num_samples": NUM_SAMPLES, "sample_batch": SAMPLE_BATCH,
                  "spacing": SPACING,
                  "clip_x0": {"cosine-eps": True, "flow": False, "edm": False},
                  "params": "EMA", "seed": SEED,
                  "classifier": clf.name, "fid_reference": "digits:test (359 images)",
                  "low_nfe": LOW_NFE, "backend": jax.default_backend(),
                  "jax_version": jax.__version__},
        "table": table,
        "best_at_low_nfe": {name: best_fid(table[name], LOW_NFE) for name in table},
        "figures": figures,
        "runtime_s": round(time.time() - start, 2),
    }


def best_fid(rows: dict, budget: int) -> float:
    """The lowest FID of a run's samplers at <= ``budget`` NFE."""
    return min(r["classifier_fid"] for by_steps in rows.values() for r in by_steps.values()
               if r["nfe"] <= budget)


def _plot(out_dir, table) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=90)
    for name, samplers in table.items():
        for sampler, rows in samplers.items():
            ax.plot([r["nfe"] for r in rows.values()],
                    [r["classifier_fid"] for r in rows.values()], "o-",
                    label=f"{name} / {sampler}")
    ax.set(xscale="log", yscale="log", xlabel="network calls (NFE)", ylabel="classifier FID",
           title="digits: process x sampler")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return [save_figure(fig, out_dir, f"{NAME}_curves.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        for name, samplers in results["table"].items():
            for sampler, rows in samplers.items():
                for steps, row in rows.items():
                    if not (np.isfinite(row["classifier_fid"]) and row["classifier_fid"] >= 0):
                        failures.append(f"{name} {sampler} {steps}: FID is not finite")
        best = {name: best_fid(results["table"][name], LOW_NFE) for name in GRID}
        for run in CHALLENGERS:
            if not best[run] < best[BASELINE]:
                failures.append(f"at <= {LOW_NFE} NFE {run}'s best FID {best[run]:.2f} is "
                                f"not below DDPM's {best[BASELINE]:.2f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
