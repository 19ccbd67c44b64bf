r"""Claim 8: absorbing beats uniform discrete diffusion on text in bits per character, and
continuous-time masked diffusion is at least as good as absorbing D3PM.

The three diffusion runs of :mod:`claims._text_runs` (the same transformer, data and budget)
are scored on the first :data:`EXAMPLES` 256-character rows of the embedded corpus's test
split with the library's unbiased bounds (:func:`jaxdiff.evaluation.text.row_bits_per_char`):
D3PM's :math:`L_{vb}` with :data:`BOUND_SAMPLES` stratified steps of T = 1000, the masked
ELBO with as many stratified times. Differences are paired (the same rows), with the
standard error of the per-row difference.

Expected (Austin et al. 2021, text8: absorbing <= 1.45, uniform <= 1.61 bpc; Shi et al. 2024,
MD4 <= 1.37): absorbing below uniform by more than :data:`Z` standard errors; masked not
above absorbing by more than :data:`Z` standard errors.
"""

import time

import numpy as np

from claims import _text_runs

NAME = "text_likelihood"
CLAIM = ("Absorbing-state D3PM reaches a lower bits-per-character bound than uniform D3PM on "
         "text, and continuous-time masked diffusion is at least as good as absorbing "
         "(D3PM text8: <= 1.45 vs <= 1.61; MD4 <= 1.37).")
EXAMPLES = 256
BOUND_SAMPLES = 20
Z = 3.0
PAPER_BPC = {"absorbing": 1.45, "uniform": 1.61, "masked": 1.37}


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.asarray(a) - np.asarray(b)
    return {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d)))}


def run(out_dir) -> dict:
    del out_dir   # no figures: the numbers are the result
    start = time.time()
    scores = {p: _text_runs.test_bpc(p, examples=EXAMPLES, bound_samples=BOUND_SAMPLES)
              for p in _text_runs.DIFFUSION}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"examples": EXAMPLES, "seq_len": 256, "split": "test (enwiki_gensim)",
                  "bound_samples": BOUND_SAMPLES, "seed": _text_runs.SEED,
                  "runs": {p: _text_runs.run_info(p) for p in _text_runs.DIFFUSION}},
        "tolerances": {"z": Z},
        "paper_text8_bpc": PAPER_BPC,
        "bpc": {p: {k: v for k, v in s.items() if k != "per_row"} for p, s in scores.items()},
        "uniform_minus_absorbing": _paired(scores["uniform"]["per_row"],
                                           scores["absorbing"]["per_row"]),
        "masked_minus_absorbing": _paired(scores["masked"]["per_row"],
                                          scores["absorbing"]["per_row"]),
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        z = results["tolerances"]["z"]
        if z != Z:
            failures.append(f"tolerance z = {z}, expected {Z}")
        for process in _text_runs.DIFFUSION:
            bpc = results["bpc"][process]["bpc"]
            if not 0.0 < bpc < np.log2(27) + 0.5:
                failures.append(f"{process}: {bpc:.3f} bpc is not a plausible bound "
                                f"(0, log2(27) + 0.5)")
        gap = results["uniform_minus_absorbing"]
        if not gap["mean"] > z * gap["stderr"]:
            failures.append(f"uniform - absorbing = {gap['mean']:.4f} bpc is not above "
                            f"{z} x {gap['stderr']:.4f}: absorbing is not better")
        gap = results["masked_minus_absorbing"]
        if not gap["mean"] < z * gap["stderr"]:
            failures.append(f"masked - absorbing = {gap['mean']:.4f} bpc is above "
                            f"{z} x {gap['stderr']:.4f}: masked is worse than absorbing")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
