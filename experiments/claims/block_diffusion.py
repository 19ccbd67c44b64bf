r"""Claim 19: block diffusion interpolates between autoregressive and masked diffusion in
likelihood, and its KV cache makes it faster than masked diffusion at the same steps.

Runs: ``experiments/configs/text_cpu.py:block_K`` for K in :data:`BLOCK_SIZES` (BD3-LM,
Arriola et al. 2025: the same 4-block, 128-wide transformer with block-causal attention and
no time conditioning, two-stream training, one time per block), beside the ``masked`` and
``autoregressive`` runs of :mod:`claims._text_runs`; all at the same budget (500 steps of 16
windows of 256 characters).

Likelihood: bits per character on the first :data:`EXAMPLES` test rows, the block bound
with :data:`BOUND_SAMPLES` stratified times per block (the protocol of claims 8-9; paired
differences). Generation: a jitted batch of :data:`BATCH` sequences of 256 characters, the
median of :data:`ROUNDS` rounds with the samplers alternating; block diffusion with its KV
cache at K steps per block (256 steps in all for every block size) and without the cache,
masked diffusion at 256 steps, the AR model with its cache; quality as generative
perplexity per character under the AR run and the mean character entropy of
:data:`NUM_SAMPLES` samples.

Expected, stated before the runs (BD3-LM Table 3 / 7: LM1B perplexity 22.83 AR, 28.23 at
block 4, 31.78 for the best earlier diffusion model; its samples better than MDLM's):

- bits per character non-decreasing in the block size: no step to a larger block lowers it
  by more than :data:`Z` standard errors of the paired difference;
- the ends meet the baselines: block 1 within :data:`END_TOLERANCE` bpc of AR, block 256
  within :data:`END_TOLERANCE` of masked diffusion;
- block 4 below masked diffusion by more than :data:`Z` standard errors;
- block 16 with its KV cache faster than masked diffusion at the same 256 steps, and faster
  than block 16 without the cache;
- block 4's samples have a lower generative perplexity than masked diffusion's at 256 steps.
"""

import statistics
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from jaxdiff.evaluation import text as text_evaluation

NAME = "block_diffusion"
CLAIM = ("Block diffusion's bits per character rise from the autoregressive model's (block "
         "1) to masked diffusion's (block 256); at block 4 it beats masked diffusion, and its "
         "KV cache makes it generate faster than masked diffusion at the same steps "
         "(BD3-LM, LM1B: AR 22.83, block 4 28.23, earlier diffusion 31.78).")
BLOCK_SIZES = (1, 4, 16, 64, 256)
EXAMPLES = 256
BOUND_SAMPLES = 20
BATCH = 32
NUM_SAMPLES = 64
ROUNDS = 3
Z = 3.0
END_TOLERANCE = 0.2
PAPER_LM1B_PPL = {"autoregressive": 22.83, "block_4": 28.23, "best_earlier_diffusion": 31.78}


def _paired(a, b) -> dict:
    d = np.asarray(a) - np.asarray(b)
    return {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d)))}


def _block(k: int) -> str:
    return f"block_{k}"


def _samplers(runs) -> dict:
    """name -> (jitted sample(key, params), params)."""
    samplers = {}
    for k, cached in ((4, True), (16, True), (16, False), (256, True)):
        run, state = runs[_block(k)]
        samplers[f"{_block(k)}_{'kv_cache' if cached else 'no_cache'}"] = (
            jd.train.make_sampler(run, sampler="cached" if cached else "uncached",
                                  num_steps=k, count=BATCH), state.ema_params)
    run, state = runs["masked"]
    samplers["masked_256"] = (jd.train.make_sampler(run, num_steps=256, count=BATCH),
                              state.ema_params)
    run, state = runs["autoregressive"]
    samplers["autoregressive_cached"] = (jd.train.make_sampler(run, count=BATCH),
                                         state.ema_params)
    return samplers


def _timed(fn, key, params) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(key, params))
    return time.perf_counter() - start


def run(out_dir) -> dict:
    del out_dir   # no figures: the tables are the result
    start = time.time()
    names = [_block(k) for k in BLOCK_SIZES] + ["masked", "autoregressive"]
    runs = {name: _text_runs.trained_run(name) for name in names}
    scores = {name: _text_runs.test_bpc(name, examples=EXAMPLES, bound_samples=BOUND_SAMPLES)
              for name in names}
    rows = {name: s["per_row"] for name, s in scores.items()}
    steps = {f"{_block(a)}_to_{_block(b)}": _paired(rows[_block(b)], rows[_block(a)])
             for a, b in zip(BLOCK_SIZES[:-1], BLOCK_SIZES[1:], strict=True)}

    samplers = _samplers(runs)
    key = jax.random.key(_text_runs.SEED)
    samples = {name: np.concatenate([np.asarray(fn(jax.random.fold_in(key, i), params))
                                     for i in range(NUM_SAMPLES // BATCH)])
               for name, (fn, params) in samplers.items()}        # compiles each sampler
    times = {name: [] for name in samplers}
    for r in range(ROUNDS):
        order = list(samplers) if r % 2 == 0 else list(reversed(samplers))
        for name in order:
            fn, params = samplers[name]
            times[name].append(_timed(fn, jax.random.fold_in(key, 1000 + r), params))
    ar_run, ar_state = runs["autoregressive"]
    generation = {}
    for name in samplers:
        texts = [jd.tasks.TOKENIZER.decode(row) for row in samples[name]]
        quality = text_evaluation.sample_quality(texts, ar=(ar_run, ar_state.ema_params))
        generation[name] = {"median_s": statistics.median(times[name]), "times_s": times[name],
                            "generative_perplexity": quality["generative_perplexity"],
                            "character_entropy": quality["character_entropy"],
                            "example": texts[0][:60]}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"examples": EXAMPLES, "bound_samples": BOUND_SAMPLES, "batch": BATCH,
                  "rounds": ROUNDS, "num_samples": NUM_SAMPLES, "seq_len": 256,
                  "block_sizes": list(BLOCK_SIZES), "backend": jax.default_backend(),
                  "runs": {name: _text_runs.run_info(name) for name in names}},
        "tolerances": {"z": Z, "end_tolerance_bpc": END_TOLERANCE},
        "paper_lm1b_perplexity": PAPER_LM1B_PPL,
        "bpc": {name: {k: v for k, v in s.items() if k != "per_row"}
                for name, s in scores.items()},
        "block_size_steps": steps,
        "block_1_minus_autoregressive": _paired(rows[_block(1)], rows["autoregressive"]),
        "block_256_minus_masked": _paired(rows[_block(256)], rows["masked"]),
        "block_4_minus_masked": _paired(rows[_block(4)], rows["masked"]),
        "generation": generation,
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        z, tolerance = results["tolerances"]["z"], results["tolerances"]["end_tolerance_bpc"]
        if (z, tolerance) != (Z, END_TOLERANCE):
            failures.append(f"tolerances {z}, {tolerance}, expected {Z}, {END_TOLERANCE}")
        for name, step in results["block_size_steps"].items():
            if not step["mean"] > -z * step["stderr"]:
                failures.append(f"{name}: bpc falls by {-step['mean']:.4f} (> {z} x "
                                f"{step['stderr']:.4f}): not monotone in the block size")
        for name in ("block_1_minus_autoregressive", "block_256_minus_masked"):
            if not abs(results[name]["mean"]) < tolerance:
                failures.append(f"{name} = {results[name]['mean']:.4f} bpc, not within "
                                f"{tolerance}")
        gap = results["block_4_minus_masked"]
        if not gap["mean"] < -z * gap["stderr"]:
            failures.append(f"block 4 - masked = {gap['mean']:.4f} bpc is not below "
                            f"-{z} x {gap['stderr']:.4f}")
        gen = results["generation"]
        cached = gen["block_16_kv_cache"]["median_s"]
        for other in ("masked_256", "block_16_no_cache"):
            if not cached < gen[other]["median_s"]:
                failures.append(f"block 16 with its KV cache ({cached:.3f} s) is not faster "
                                f"than {other} ({gen[other]['median_s']:.3f} s)")
        if not (gen["block_4_kv_cache"]["generative_perplexity"]
                < gen["masked_256"]["generative_perplexity"]):
            failures.append("block 4's generative perplexity is not below masked diffusion's")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
