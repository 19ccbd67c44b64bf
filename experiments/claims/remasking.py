r"""Claim 20: remasking lets a masked diffusion model turn more sampling steps into better
samples, where the ancestral sampler saturates.

The ``masked`` run of :mod:`claims._text_runs` (log-linear, time-conditioned) draws
:data:`NUM_SAMPLES` sequences of 256 characters at each of :data:`STEPS` steps with MDLM's
ancestral sampler and with ReMDM's ``cap`` schedule (Wang et al. 2025; :data:`ETA`, its OWT
setting), both without nucleus truncation. Quality: generative perplexity per character
under the ``autoregressive`` run, beside the mean character entropy (generative perplexity
alone rewards low-entropy text).

Expected, stated before the run (ReMDM Fig. 1 / Table 1: MAUVE and generative perplexity of
ReMDM keep improving with steps while MDLM's flatten): from :data:`STEPS[1]` to
:data:`STEPS[2]` steps, the ancestral sampler's generative perplexity falls by less than
:data:`GAIN` (relative), ReMDM's by more than :data:`GAIN`; and at the largest step count
ReMDM's character entropy is within :data:`ENTROPY_TOLERANCE` (relative) of the ancestral
sampler's, so that the comparison is at matched entropy.
"""

import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from jaxdiff.evaluation import text as text_evaluation

NAME = "remasking"
CLAIM = ("With more sampling steps, ReMDM remasking keeps improving a masked diffusion "
         "model's samples at matched entropy, while the ancestral sampler saturates (ReMDM).")
STEPS = (32, 128, 512)
ETA = 0.02
BATCH = 32
NUM_SAMPLES = 64
GAIN = 0.05
ENTROPY_TOLERANCE = 0.05
SAMPLERS = {"ancestral": {}, "remdm_cap": {"sampler": "remdm", "remasking": "cap",
                                           "eta": ETA}}


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    run_, state = _text_runs.trained_run("masked")
    ar_run, ar_state = _text_runs.trained_run("autoregressive")
    key = jax.random.key(_text_runs.SEED)
    quality = {}
    for name, options in SAMPLERS.items():
        for steps in STEPS:
            sample = jd.train.make_sampler(run_, count=BATCH, num_steps=steps, **options)
            rows = np.concatenate([np.asarray(sample(jax.random.fold_in(key, i),
                                                     state.ema_params))
                                   for i in range(NUM_SAMPLES // BATCH)])
            texts = [jd.tasks.TOKENIZER.decode(row) for row in rows]
            q = text_evaluation.sample_quality(texts, ar=(ar_run, ar_state.ema_params))
            quality[f"{name}_{steps}"] = {
                "generative_perplexity": q["generative_perplexity"],
                "character_entropy": q["character_entropy"], "example": texts[0][:60]}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"steps": list(STEPS), "eta": ETA, "batch": BATCH, "num_samples": NUM_SAMPLES,
                  "seq_len": 256, "top_p": 1.0,
                  "runs": {p: _text_runs.run_info(p) for p in ("masked", "autoregressive")}},
        "tolerances": {"gain": GAIN, "entropy": ENTROPY_TOLERANCE},
        "quality": quality,
        "runtime_s": round(time.time() - start, 1),
    }


def _gain(quality, name: str) -> float:
    """Relative fall of the generative perplexity from STEPS[1] to STEPS[2] steps."""
    before = quality[f"{name}_{STEPS[1]}"]["generative_perplexity"]
    return 1.0 - quality[f"{name}_{STEPS[2]}"]["generative_perplexity"] / before


def check(results: dict) -> list[str]:
    failures = []
    try:
        gain, entropy = results["tolerances"]["gain"], results["tolerances"]["entropy"]
        if (gain, entropy) != (GAIN, ENTROPY_TOLERANCE):
            failures.append(f"tolerances {gain}, {entropy}, expected {GAIN}, "
                            f"{ENTROPY_TOLERANCE}")
        quality = results["quality"]
        if not _gain(quality, "ancestral") < gain:
            failures.append(f"the ancestral sampler still improves by "
                            f"{_gain(quality, 'ancestral'):.3f} >= {gain}: it has not "
                            f"saturated")
        if not _gain(quality, "remdm_cap") > gain:
            failures.append(f"ReMDM improves by only {_gain(quality, 'remdm_cap'):.3f} "
                            f"<= {gain}")
        top = STEPS[-1]
        a, r = (quality[f"{n}_{top}"]["character_entropy"] for n in ("ancestral", "remdm_cap"))
        if not abs(r / a - 1) < entropy:
            failures.append(f"character entropy at {top} steps: ReMDM {r:.3f} vs ancestral "
                            f"{a:.3f}, not matched within {entropy}")
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
