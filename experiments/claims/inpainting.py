r"""Claim 12: an unconditional diffusion model inpaints images: with the known pixels
pasted in at every step (re-noised to the step's level; Song et al. 2021's replacement method,
``jd.gaussian.sample(..., inpaint_mask=, inpaint_values=)``), the masked half is filled with a
plausible completion that keeps the digit's identity, and the known pixels are kept exactly.

The ``cosine-eps`` run of :mod:`claims._image_runs` (EMA parameters), ancestral sampling over
250 respaced steps (``clip_x0=True``), on the first :data:`NUM_IMAGES` test digits, for two
masks: the top half known (rows 0-3; the bottom half is filled) and the left half known
(columns 0-3).

* **known pixels**: the maximum absolute difference between the output and the original on the
  known half (the sampler's last paste uses :math:`\alpha = 1, \sigma = 0`);
* **classifier agreement**: the fraction of inpainted digits that the digits classifier
  (library defaults) assigns to the original's true label, against the baseline of filling the
  unknown half with the train split's mean image (what the known half alone tells the
  classifier) and against the complete originals (the ceiling); the difference to the baseline
  is paired per image, with its standard error;
* the MSE of the filled half against the original (reported).

Expected (fixed before the first measurement): the known pixels equal the originals exactly
(max difference 0), and the inpainted digits' classifier agreement is above the mean-fill
baseline by more than :data:`Z` paired standard errors. The first measurement did not show the
second; in hindsight the comparison is one a perfect inpainter is not expected to win: a
sample from the posterior :math:`p(x \mid \text{known half})` has the true class with
probability :math:`\sum_c p(c \mid \text{half})\,\Pr(\text{true} = c)`, on average
:math:`\sum_c p(c\mid\text{half})^2 \le \max_c p(c\mid\text{half})`, while a good
classifier on the mean-filled half approaches the max. It stays in ``check()`` as it was
stated. Added after the first measurement, also required: agreement above the baseline that
fills the unknown half with another test digit's (the known half kept; it shows whether the
model's fill is coherent with the known half).
"""

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs

NAME = "inpainting"
CLAIM = ("Diffusion inpainting (known pixels pasted in at every step) fills a masked half "
         "with a completion that keeps the digit's class, and keeps the known pixels exactly.")

RUN = "cosine-eps"
MASKS = ("top", "left")
SAMPLER, SAMPLE_STEPS = "ddpm", 250
NUM_IMAGES = 200        # the first 200 test digits (CPU budget)
FIGURE_DIGITS = 16
SEED = 0
Z = 2.0
KNOWN_ATOL = 0.0


def known_mask(kind: str, shape) -> np.ndarray:
    """1 on the known half of ``[H, W, C]`` images."""
    h, w, c = shape
    mask = np.zeros((h, w, c), np.float32)
    if kind == "top":
        mask[: h // 2] = 1.0
    elif kind == "left":
        mask[:, : w // 2] = 1.0
    else:
        raise ValueError(f"unknown mask {kind!r}")
    return mask


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    clf = runs.classifier()
    run_, state = runs.trained_run(RUN)
    test = runs.test_split()
    x0 = np.asarray(test.images[:NUM_IMAGES])
    labels = np.asarray(test.labels[:NUM_IMAGES])
    train_mean = np.asarray(jd.data.load(runs.DATASET, "train").images).mean(0)
    original_correct = runs.predicted_labels(x0, clf) == labels
    results, figures = {}, []
    for kind in MASKS:
        mask = known_mask(kind, x0.shape[1:])
        sample = runs.sampler_fn(run_, sampler=SAMPLER, num_steps=SAMPLE_STEPS,
                                 count=len(x0), inpaint_mask=jnp.asarray(mask),
                                 inpaint_values=jnp.asarray(x0))
        t0 = time.time()
        filled = np.asarray(sample(jax.random.fold_in(jax.random.key(SEED), 0),
                                   state.ema_params))
        seconds = time.time() - t0
        baseline = mask * x0 + (1 - mask) * train_mean
        other = np.roll(x0, 1, axis=0)          # the unknown half of another test digit
        random_fill = mask * x0 + (1 - mask) * other
        correct = runs.predicted_labels(filled, clf) == labels
        base_correct = runs.predicted_labels(baseline, clf) == labels
        random_correct = runs.predicted_labels(random_fill, clf) == labels
        unknown = (1 - mask).astype(bool)
        results[kind] = {
            "known_max_abs_error": float(np.max(np.abs(filled - x0)[:, mask.astype(bool)])),
            "agreement": float(correct.mean()),
            "agreement_mean_fill_baseline": float(base_correct.mean()),
            "agreement_difference": runs.paired(correct, base_correct),
            "agreement_other_digit_fill_baseline": float(random_correct.mean()),
            "agreement_difference_vs_other_digit_fill": runs.paired(correct, random_correct),
            "unknown_half_mse": float(np.mean((filled - x0)[:, unknown] ** 2)),
            "unknown_half_mse_mean_fill": float(np.mean((baseline - x0)[:, unknown] ** 2)),
            "seconds": round(seconds, 1),
        }
        print(f"[{NAME}] {kind}: {results[kind]}", flush=True)
        n = FIGURE_DIGITS
        masked = mask * x0[:n] + (1 - mask) * -1.0
        grid = np.stack([x0[:n], masked, filled[:n]], axis=0)        # rows: 3 per digit set
        figures.append(runs.save_grid(out_dir / f"{NAME}_{kind}.png",
                                      grid.reshape(-1, *x0.shape[1:]), columns=n, scale=6))
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "run": RUN, "info": runs.run_info(RUN), "masks": list(MASKS),
            "sampler": SAMPLER, "sample_steps": SAMPLE_STEPS, "clip_x0": True,
            "params": "EMA", "seed": SEED, "num_images": int(len(x0)), "data": "digits:test",
            "classifier": clf.name, "backend": jax.default_backend(),
            "jax_version": jax.__version__,
        },
        "tolerances": {"z": Z, "known_atol": KNOWN_ATOL},
        "original_accuracy": float(original_correct.mean()),
        "masks": results,
        "figures": figures,
        "figure_notes": {f"{NAME}_<mask>.png": (
            f"rows: {FIGURE_DIGITS} test digits, the known half (unknown in black), the "
            "inpainted digit")},
        "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        for kind in MASKS:
            r = results["masks"][kind]
            if not r["known_max_abs_error"] <= KNOWN_ATOL:
                failures.append(f"{kind}: known pixels changed by up to "
                                f"{r['known_max_abs_error']:.3g}")
            d = r["agreement_difference"]
            if not np.isclose(d["mean"], r["agreement"] - r["agreement_mean_fill_baseline"],
                              atol=1e-9):
                failures.append(f"{kind}: recorded agreement difference is inconsistent")
            if not (d["mean"] > 0 and d["mean"] > Z * d["stderr"]):
                failures.append(f"{kind}: agreement {r['agreement']:.3f} is not above the "
                                f"mean-fill baseline {r['agreement_mean_fill_baseline']:.3f} "
                                f"by {Z} standard errors ({d['mean']:.3f} +- {d['stderr']:.3f})")
            d = r["agreement_difference_vs_other_digit_fill"]
            if not (d["mean"] > 0 and d["mean"] > Z * d["stderr"]):
                failures.append(f"{kind}: agreement {r['agreement']:.3f} is not above the "
                                "other-digit-fill baseline "
                                f"{r['agreement_other_digit_fill_baseline']:.3f} by {Z} "
                                f"standard errors ({d['mean']:.3f} +- {d['stderr']:.3f})")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
