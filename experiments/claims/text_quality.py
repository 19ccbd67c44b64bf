r"""Claim 11: text sample quality of each model, by the usual measures.

Each run of :mod:`claims._text_runs` draws :data:`NUM_SAMPLES` sequences of 256 characters
(diffusion with :data:`STEPS` steps, the autoregressive model left to right with its cache);
:func:`jaxdiff.evaluation.text.sample_quality` scores them: generative perplexity per
character under the autoregressive run, distinct-1..4 and self-BLEU over words. The same
scores of :data:`NUM_SAMPLES` real test rows are the reference. (BLEU of infills against the
held-out truth is in claim 10.)

Expected: no repetition collapse -- every model's distinct-2 at least :data:`DIVERSITY_RATIO`
of the data's; the better likelihood gives the better samples -- the autoregressive samples'
generative perplexity below the uniform D3PM samples' (text8 bpc 1.23 vs <= 1.61).
"""

import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from jaxdiff.evaluation import text as text_evaluation

NAME = "text_quality"
CLAIM = ("Samples of every text model keep the data's diversity (no repetition collapse), and "
         "the model with the better likelihood (autoregressive) gives samples of lower "
         "generative perplexity than uniform D3PM.")
NUM_SAMPLES = 64
BATCH = 32
STEPS = 256
DIVERSITY_RATIO = 0.8


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    runs = {p: _text_runs.trained_run(p) for p in _text_runs.PROCESSES}
    ar_run, ar_state = runs["autoregressive"]
    ar = (ar_run, ar_state.ema_params)
    models = {}
    for process, (run_, state) in runs.items():
        ids, timing = text_evaluation.draw_text_samples(
            run_, state.ema_params, num_samples=NUM_SAMPLES, steps=STEPS,
            seed=_text_runs.SEED, batch_size=BATCH, timing_rounds=1)
        texts = [jd.tasks.TOKENIZER.decode(row) for row in ids]
        models[process] = {**text_evaluation.sample_quality(texts, ar=ar), "examples": texts[:4]}
    reference = [jd.tasks.TOKENIZER.decode(row)
                 for row in text_evaluation.test_rows(ar_run)[-NUM_SAMPLES:]]
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"num_samples": NUM_SAMPLES, "steps": STEPS, "seq_len": 256,
                  "reference": f"the last {NUM_SAMPLES} test rows", "seed": _text_runs.SEED,
                  "backend": jax.default_backend()},
        "tolerances": {"diversity_ratio": DIVERSITY_RATIO},
        "models": models,
        "test_data": text_evaluation.sample_quality(reference, ar=ar),
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        ratio = results["tolerances"]["diversity_ratio"]
        data = results["test_data"]
        for process, model in results["models"].items():
            if not model["distinct_2"] >= ratio * data["distinct_2"]:
                failures.append(f"{process}: distinct-2 {model['distinct_2']:.3f} is below "
                                f"{ratio} x the data's {data['distinct_2']:.3f}")
            if not np.isfinite(model["generative_perplexity"]):
                failures.append(f"{process}: generative perplexity is not finite")
        ar = results["models"]["autoregressive"]["generative_perplexity"]
        uniform = results["models"]["uniform"]["generative_perplexity"]
        if not ar < uniform:
            failures.append(f"autoregressive samples' generative perplexity {ar:.2f} is not "
                            f"below uniform D3PM's {uniform:.2f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
