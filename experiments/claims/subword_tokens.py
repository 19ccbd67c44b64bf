r"""Claim 22: at the same budget, BPE tokens give a lower bound in bits per character than
characters, for masked diffusion and for the autoregressive baseline.

Runs: ``experiments/configs/text_cpu.py:<process>`` and ``<process>_bpe`` for ``masked``
and ``autoregressive``: the same 4-block, 128-wide transformer, batch 16 of 256-token
windows, 500 steps; the ``_bpe`` runs read a 512-token BPE trained on the training split
(:mod:`jaxdiff.data.subword`; 2.6 characters per token), so at the same steps and sequence
length they see more text. Measured: every test row's bound (the masked ELBO with
:data:`BOUND_SAMPLES` stratified times, the AR model's exact NLL) in bits per character, a
BPE run's per-token bound converted with the test split's measured characters per token;
the means with their standard errors over rows (characters and BPE rows cover different
text, so the comparison is unpaired).

Expected, stated before the runs (every benchmark after text8 uses subword tokens; a token
carries more of the text per position): for both processes the BPE run's bits per
character are below the character run's by more than :data:`Z` combined standard errors.
"""

import math
import time

import numpy as np

from claims import _text_runs
from jaxdiff.tasks.text import characters_per_token

NAME = "subword_tokens"
CLAIM = ("At the same steps, batch and sequence length, BPE tokens reach a lower bound in "
         "bits per character than characters, for masked diffusion and the autoregressive "
         "baseline.")
PROCESSES = ("masked", "autoregressive")
BOUND_SAMPLES = 20
Z = 3.0


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    results = {}
    for process in PROCESSES:
        for variant in (process, f"{process}_bpe"):
            run_, _ = _text_runs.trained_run(variant)
            bpc = _text_runs.test_bpc(variant, examples=None, bound_samples=BOUND_SAMPLES)
            results[variant] = {
                "bpc": bpc["bpc"], "bpc_stderr": bpc["bpc_stderr"],
                "rows": len(bpc["per_row"]),
                "characters_per_token": characters_per_token(run_.config, "test"),
                "run": _text_runs.run_info(variant)}
    return {"name": NAME, "claim": CLAIM,
            "setup": {"bound_samples": BOUND_SAMPLES, "seq_len_tokens": 256,
                      "bpe_vocab_size": 512, "steps": 500, "batch": 16},
            "tolerances": {"z": Z}, "runs": results,
            "runtime_s": round(time.time() - start, 1)}


def check(results: dict) -> list[str]:
    failures = []
    try:
        if results["tolerances"]["z"] != Z:
            failures.append(f"tolerance z = {results['tolerances']['z']}, expected {Z}")
        for process in PROCESSES:
            chars, bpe = results["runs"][process], results["runs"][f"{process}_bpe"]
            gap = chars["bpc"] - bpe["bpc"]
            stderr = math.hypot(chars["bpc_stderr"], bpe["bpc_stderr"])
            if not gap > Z * stderr:
                failures.append(f"{process}: BPE {bpe['bpc']:.3f} vs characters "
                                f"{chars['bpc']:.3f} bits/char, a gap of {gap:.3f} not above "
                                f"{Z} x {stderr:.3f}")
            if not np.isfinite([chars["bpc"], bpe["bpc"]]).all():
                failures.append(f"{process}: non-finite bits per character")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
