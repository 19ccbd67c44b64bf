r"""Claim 9: for text, the autoregressive model has the better likelihood, and diffusion
generates faster at few steps.

Likelihood: the exact NLL of the autoregressive run against the bounds of the three
diffusion runs of :mod:`claims._text_runs` (same transformer, data, budget), on the same
:data:`EXAMPLES` test rows (paired), by the protocol of claim 8.

Speed: the median wall time (:data:`ROUNDS` jitted calls after compilation, the peers
alternating within each round) of generating a batch of :data:`BATCH` sequences of 256
characters: absorbing D3PM and masked diffusion at each of :data:`STEPS` steps, the
autoregressive model with its key-value cache (256 one-token steps) and without it (256
full forward passes). Quality at each step count: the generative perplexity (per character)
of :data:`NUM_SAMPLES` samples under the autoregressive run.

Expected (Austin et al. 2021; Sahoo et al. 2024; Shi et al. 2024): AR bits per character
below every diffusion bound (text8: AR 1.23 vs >= 1.37); diffusion at <= 32 steps faster than
the cached AR sampler (D3PM reports 0.0785 s vs 0.357 s per sample); diffusion samples
better (lower generative perplexity) with more steps.
"""

import statistics
import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from claims._figures import save_figure
from jaxdiff.evaluation import text as text_evaluation

NAME = "text_speed"
CLAIM = ("The autoregressive model has the better bits per character; diffusion generates "
         "256 characters faster than the autoregressive model at few steps, and its samples "
         "improve with more steps.")
EXAMPLES = 256
BOUND_SAMPLES = 20
STEPS = (8, 32, 128, 256)
FEW_STEPS = (8, 32)
BATCH = 32
TIMED = ("absorbing", "masked")   # the diffusion runs timed against the AR model
NUM_SAMPLES = 64
ROUNDS = 3
Z = 3.0


def _timed(fn, key, params) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(key, params))
    return time.perf_counter() - start


def _samplers(runs):
    """Every (name -> (jitted sample(key, params), params)) to time and score."""
    samplers = {}
    for process in TIMED:
        run, state = runs[process]
        for steps in STEPS:
            samplers[f"{process}_{steps}"] = (
                jd.train.make_sampler(run, num_steps=steps, count=BATCH), state.ema_params)
    run, state = runs["autoregressive"]
    for sampler in ("cached", "uncached"):
        samplers[f"autoregressive_{sampler}"] = (
            jd.train.make_sampler(run, sampler=sampler, count=BATCH), state.ema_params)
    return samplers


def run(out_dir) -> dict:
    start = time.time()
    runs = {p: _text_runs.trained_run(p) for p in _text_runs.PROCESSES}
    scores = {p: _text_runs.test_bpc(p, examples=EXAMPLES, bound_samples=BOUND_SAMPLES)
              for p in _text_runs.PROCESSES}
    ar_rows = np.asarray(scores["autoregressive"]["per_row"])
    gaps = {}
    for p in _text_runs.DIFFUSION:
        d = np.asarray(scores[p]["per_row"]) - ar_rows
        gaps[p] = {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d)))}

    samplers = _samplers(runs)
    key = jax.random.key(_text_runs.SEED)
    samples = {name: np.concatenate([np.asarray(fn(jax.random.fold_in(key, i), params))
                                     for i in range(NUM_SAMPLES // BATCH)])
               for name, (fn, params) in samplers.items()}        # compiles each sampler
    times = {name: [] for name in samplers}
    for r in range(ROUNDS):                                        # peers alternate
        for name, (fn, params) in samplers.items():
            times[name].append(_timed(fn, jax.random.fold_in(key, 1000 + r), params))
    ar = runs["autoregressive"]
    generation = {}
    for name in samplers:
        texts = [jd.tasks.TOKENIZER.decode(row) for row in samples[name]]
        quality = text_evaluation.sample_quality(texts, ar=(ar[0], ar[1].ema_params))
        generation[name] = {"median_s": statistics.median(times[name]), "times_s": times[name],
                            "per_sequence_s": statistics.median(times[name]) / BATCH,
                            "generative_perplexity": quality["generative_perplexity"],
                            "example": texts[0]}
    figure = _plot(out_dir, generation)
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"examples": EXAMPLES, "bound_samples": BOUND_SAMPLES, "batch": BATCH,
                  "steps": list(STEPS), "rounds": ROUNDS, "num_samples": NUM_SAMPLES,
                  "seq_len": 256, "backend": jax.default_backend(),
                  "device": str(jax.devices()[0]),
                  "runs": {p: _text_runs.run_info(p) for p in _text_runs.PROCESSES}},
        "tolerances": {"z": Z, "few_steps": list(FEW_STEPS)},
        "bpc": {p: {k: v for k, v in s.items() if k != "per_row"} for p, s in scores.items()},
        "diffusion_minus_autoregressive": gaps,
        "generation": generation,
        "figures": [figure],
        "runtime_s": round(time.time() - start, 1),
    }


def _plot(out_dir, generation) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_ppl) = plt.subplots(1, 2, figsize=(10, 4))
    for process in TIMED:
        ax_time.plot(STEPS, [generation[f"{process}_{s}"]["median_s"] for s in STEPS], "o-",
                     label=process)
        ax_ppl.plot(STEPS, [generation[f"{process}_{s}"]["generative_perplexity"]
                            for s in STEPS], "o-", label=process)
    for name, style in (("autoregressive_cached", "--"), ("autoregressive_uncached", ":")):
        ax_time.axhline(generation[name]["median_s"], linestyle=style, color="k",
                        label=name.replace("_", ", "))
    ax_ppl.axhline(generation["autoregressive_cached"]["generative_perplexity"],
                   linestyle="--", color="k", label="autoregressive")
    for ax, label in ((ax_time, f"seconds per batch of {BATCH}"),
                      (ax_ppl, "generative perplexity (per char)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("diffusion sampling steps")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax_time.set_yscale("log")
    return save_figure(fig, out_dir, f"{NAME}.png", dpi=100)


def check(results: dict) -> list[str]:
    failures = []
    try:
        z = results["tolerances"]["z"]
        for process, gap in results["diffusion_minus_autoregressive"].items():
            if not gap["mean"] > z * gap["stderr"]:
                failures.append(f"{process} - autoregressive = {gap['mean']:.4f} bpc is not "
                                f"above {z} x {gap['stderr']:.4f}: AR is not better")
        gen = results["generation"]
        cached = gen["autoregressive_cached"]["median_s"]
        for process in TIMED:
            for steps in results["tolerances"]["few_steps"]:
                t = gen[f"{process}_{steps}"]["median_s"]
                if not t < cached:
                    failures.append(f"{process} at {steps} steps takes {t:.3f} s, not less "
                                    f"than the cached AR sampler's {cached:.3f} s")
            lo, hi = results["setup"]["steps"][0], results["setup"]["steps"][-1]
            few = gen[f"{process}_{lo}"]["generative_perplexity"]
            many = gen[f"{process}_{hi}"]["generative_perplexity"]
            if not many < few:
                failures.append(f"{process}: generative perplexity {many:.2f} at {hi} steps is "
                                f"not below {few:.2f} at {lo} steps")
    except (KeyError, TypeError, ValueError, IndexError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
