r"""Claim 16: post-hoc EMA (Karras et al. 2024, EDM2, Sec. 3): from one run's snapshots of
two EMA profiles any EMA length can be reconstructed after training; a third profile,
tracked but held out of the reconstruction, is recovered; and the best EMA length lies
inside the swept range (EDM2 Fig. 5).

One run: the shared ``flow`` run's config (:mod:`claims._image_runs`, 2000 steps of
digits_cpu, rectified flow) with three power-function EMAs tracked (``optim.phema_stds`` =
:data:`TRACKED` + the held-out :data:`HELD_OUT`) and snapshots every :data:`SNAPSHOT_EVERY`
steps. Reconstructions use only the :data:`TRACKED` profiles' snapshots
(:func:`jaxdiff.train.phema.posthoc_weights`). Measured, each with classifier FID of
:data:`NUM_SAMPLES` Euler-:data:`SAMPLE_STEPS` samples against the test split:

* the held-out profile: its tracked parameters against their reconstruction (relative L2
  distance, against the distance between the tracked profile and the raw parameters) and
  both FIDs;
* the sweep: FID of the reconstructed EMA at each relative std of :data:`SWEEP`, with the
  run's ordinary EMA (decay 0.995) for reference.

Expected before the run (EDM2): the reconstruction within 5% of the EMA-to-parameters
distance of the tracked profile, and its FID within 10% of the tracked one's; the sweep's
best FID at a length strictly inside it.
"""

import copy
import time

import jax
import numpy as np

from claims import _image_runs as runs
from jaxdiff.train import phema
from jaxdiff.train.snapshots import load_snapshot, snapshot_steps

NAME = "posthoc_ema"
CLAIM = ("Post-hoc EMA (EDM2): any EMA length is reconstructed after training from the "
         "snapshots of two tracked profiles; a held-out tracked profile is recovered; the "
         "best EMA length lies inside the swept range (Karras et al. 2024, Sec. 3, Fig. 5).")

TRACKED = (0.05, 0.10)
HELD_OUT = 0.07
SNAPSHOT_EVERY = 100
SWEEP = (0.02, 0.035, 0.05, 0.07, 0.10, 0.15, 0.2, 0.25)
NUM_SAMPLES = 500
SAMPLE_STEPS = 16
SEED = 0
RUN = "flow-phema"


def _trained():
    """``(workdir, run, state)`` of the run with the tracked profiles (trained once)."""
    values = copy.deepcopy(runs.run_config("flow"))
    values["optim"]["phema_stds"] = tuple(sorted(TRACKED + (HELD_OUT,)))
    values["train"]["phema_every"] = SNAPSHOT_EVERY
    return (runs.default_root() / RUN, *runs.cached_run(RUN, values))


def _reconstruct(workdir, run_, state, std: float):
    """The EMA of ``std`` at the last step from the TRACKED profiles' snapshots only."""
    order = list(run_.config.optim.phema_stds)
    keep = [order.index(s) for s in TRACKED]
    trees, steps, stds = [], [], []
    for step in snapshot_steps(workdir):
        _, profiles = load_snapshot(workdir, step, state.phema)
        trees += [profiles[k] for k in keep]
        steps += [step] * len(keep)
        stds += list(TRACKED)
    weights = phema.posthoc_weights(steps, stds, runs.NUM_STEPS, std)
    return phema.combine(trees, weights)


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    clf = runs.classifier()
    workdir, run_, state = _trained()
    sample = runs.sampler_fn(run_, sampler="euler", num_steps=SAMPLE_STEPS, count=NUM_SAMPLES)

    def fid(params) -> float:
        images, _ = runs.draw(sample, params, NUM_SAMPLES, batch=NUM_SAMPLES, seed=SEED)
        return runs.classifier_fid(images, clf)

    tracked = state.phema[list(run_.config.optim.phema_stds).index(HELD_OUT)]
    rebuilt = _reconstruct(workdir, run_, state, HELD_OUT)
    gap = np.linalg.norm(_flat(tracked) - _flat(state.params))
    error = np.linalg.norm(_flat(rebuilt) - _flat(tracked))
    held_out = {"std": HELD_OUT, "relative_l2_to_tracked": float(error / np.linalg.norm(
                    _flat(tracked))),
                "error_over_ema_to_params_distance": float(error / gap),
                "classifier_fid_tracked": fid(tracked), "classifier_fid_reconstructed":
                    fid(rebuilt)}
    sweep = {str(std): {"classifier_fid": fid(_reconstruct(workdir, run_, state, std))}
             for std in SWEEP}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"run": "flow (digits_cpu) + optim.phema_stds", "train_steps": runs.NUM_STEPS,
                  "tracked": list(TRACKED), "held_out": HELD_OUT,
                  "snapshot_every": SNAPSHOT_EVERY,
                  "num_snapshots": len(snapshot_steps(workdir)), "sampler": "euler",
                  "sample_steps": SAMPLE_STEPS, "num_samples": NUM_SAMPLES, "seed": SEED,
                  "classifier": clf.name, "backend": jax.default_backend(),
                  "jax_version": jax.__version__},
        "held_out": held_out,
        "sweep": sweep,
        "ordinary_ema": {"decay": run_.config.optim.ema_decay,
                         "classifier_fid": fid(state.ema_params)},
        "raw_parameters": {"classifier_fid": fid(state.params)},
        "figures": [],
        "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        h = results["held_out"]
        if not h["error_over_ema_to_params_distance"] < 0.05:
            failures.append(f"the reconstructed {h['std']} EMA is "
                            f"{h['error_over_ema_to_params_distance']:.3f} of the EMA-to-"
                            f"parameters distance from the tracked one (needs < 0.05)")
        a, b = h["classifier_fid_tracked"], h["classifier_fid_reconstructed"]
        if not abs(a - b) <= 0.1 * a:
            failures.append(f"reconstructed FID {b:.2f} is not within 10% of the tracked "
                            f"{a:.2f}")
        fids = {float(k): v["classifier_fid"] for k, v in results["sweep"].items()}
        best = min(fids, key=fids.get)
        if best in (min(fids), max(fids)):
            failures.append(f"the best EMA length {best} is at the end of the sweep "
                            f"{sorted(fids)}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
