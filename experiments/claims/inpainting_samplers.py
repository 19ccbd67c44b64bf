r"""Claim 23 (claim 10 again, with the samplers of issue 19): does a masked diffusion model
fill a word gap from both sides better than the autoregressive baseline once it samples
with confidence-ordered unmasking or remasking?

Protocol: claim 10's (:mod:`claims.text_inpainting`): :data:`NUM_ROWS` 64-character test
windows with the middle word masked, its length known, every known character clamped at
every step; scored by character accuracy on the gap (paired over rows), exact-word rate and
character BLEU. Models and samplers, :data:`STEPS` steps each: the ``masked`` run of
:mod:`claims._text_runs` with MDLM's ``ancestral`` sampler, LLaDA's ``confidence`` order
(the most confident masked position first), ReMDM's ``cap`` remasking (:data:`ETA`), and
greedy confidence decoding (``confidence`` at temperature :data:`GREEDY_TEMPERATURE`, close
to argmax: infilling asks for the likeliest word, not a draw); ``block_4`` (block diffusion:
left context and its own block only); the ``autoregressive`` run left to right.

Expected, stated before the run (LLaDA: low-confidence remasking beats random order on
reasoning and infilling; MDLM / SEDD: both-sided context helps infilling): the confidence
sampler's gap accuracy exceeds the ancestral sampler's, and at least one masked-diffusion
sampler beats the autoregressive model by more than :data:`Z` paired standard errors.
"""

import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs, text_inpainting
from jaxdiff.evaluation import text as text_evaluation

NAME = "inpainting_samplers"
CLAIM = ("With confidence-ordered unmasking or remasking, masked diffusion fills a word gap "
         "from both sides more accurately than the left-to-right autoregressive baseline.")
NUM_ROWS = text_inpainting.NUM_ROWS
STEPS = 64
ETA = 0.02
GREEDY_TEMPERATURE = 0.1
Z = 3.0
SAMPLERS = {   # name -> (run, steps, sampler options); block diffusion's steps are per block
    "masked_ancestral": ("masked", STEPS, {}),
    "masked_confidence": ("masked", STEPS, {"sampler": "confidence"}),
    "masked_greedy_confidence": ("masked", STEPS, {"sampler": "confidence",
                                                   "temperature": GREEDY_TEMPERATURE}),
    "masked_remdm_cap": ("masked", STEPS, {"sampler": "remdm", "remasking": "cap",
                                           "eta": ETA}),
    "block_4": ("block_4", STEPS // 4, {}),
    "autoregressive": ("autoregressive", None, {}),
}


def _fill(run, params, rows, gaps, num_steps, options) -> np.ndarray:
    known = ~gaps
    sample = jd.train.make_sampler(run, count=rows.shape[0], num_steps=num_steps,
                                   inpaint_mask=known,
                                   inpaint_values=np.where(known, rows, 0), **options)
    return np.asarray(sample(jax.random.key(_text_runs.SEED), params))


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    masked_run, _ = _text_runs.trained_run("masked")
    rows, gaps = text_inpainting.gap_windows(text_evaluation.test_rows(masked_run).reshape(-1))
    models = {}
    for name, (variant, num_steps, options) in SAMPLERS.items():
        run_, state = _text_runs.trained_run(variant)
        filled = _fill(run_, state.ema_params, rows, gaps, num_steps, options)
        models[name] = text_inpainting.score_infills(filled, rows, gaps)
    ar = np.asarray(models["autoregressive"]["per_row"])

    def paired(name):
        d = np.asarray(models[name]["per_row"]) - ar
        return {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d)))}

    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"rows": NUM_ROWS, "window": text_inpainting.WINDOW, "steps": STEPS,
                  "eta": ETA, "greedy_temperature": GREEDY_TEMPERATURE,
                  "block_4_steps_per_block": STEPS // 4,
                  "mean_gap_length": float(gaps.sum(1).mean()),
                  "runs": {v: _text_runs.run_info(v) for v in ("masked", "block_4",
                                                              "autoregressive")}},
        "tolerances": {"z": Z},
        "models": {n: {k: v for k, v in m.items() if k != "per_row"} for n, m in models.items()},
        "accuracy_minus_autoregressive": {n: paired(n) for n in SAMPLERS
                                          if n != "autoregressive"},
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        if results["tolerances"]["z"] != Z:
            failures.append(f"tolerance z = {results['tolerances']['z']}, expected {Z}")
        models = results["models"]
        for name, model in models.items():
            if not model["known_characters_kept"]:
                failures.append(f"{name}: a known character changed")
        conf, anc = (models[n]["char_accuracy"] for n in ("masked_confidence",
                                                            "masked_ancestral"))
        if not conf > anc:
            failures.append(f"confidence order {conf:.3f} does not beat the ancestral "
                            f"sampler {anc:.3f}")
        gaps = results["accuracy_minus_autoregressive"]
        best = max((n for n in gaps if n.startswith("masked")), key=lambda n: gaps[n]["mean"])
        if not gaps[best]["mean"] > Z * gaps[best]["stderr"]:
            failures.append(f"the best masked sampler ({best}) beats AR by "
                            f"{gaps[best]['mean']:.4f}, not above {Z} x "
                            f"{gaps[best]['stderr']:.4f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
