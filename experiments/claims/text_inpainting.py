r"""Claim 10: text inpainting. Diffusion fills a gap from both sides; the autoregressive
model sees only the left context, so diffusion infills more accurately.

Protocol: :data:`NUM_ROWS` windows of :data:`WINDOW` characters from the test split (row
``i`` starts at character ``i * STRIDE``); in each, the word that covers the middle
character is replaced by ``[MASK]`` tokens of its length (so a model knows the gap's
length, as ``"the [MASK] sat on the [MASK]"`` with ``mask_length``). Each run of
:mod:`claims._text_runs` fills the gap: diffusion with every known character clamped at each
of :data:`STEPS` steps, the autoregressive model left to right with the known characters
forced (:func:`jaxdiff.autoregressive.ar_sample`). Scores per model: character accuracy on the
gap, exact-word rate, and the corpus BLEU (character tokens, sacreBLEU's defaults, 0-100) of
the filled gaps against the true words. Plus the example template
``"the [MASK] sat on the [MASK]"`` (spans of 3 and 3 characters) filled by each model.

Expected: absorbing and masked diffusion infill with a higher character accuracy than the
autoregressive model (paired over rows, by more than :data:`Z` standard errors).
"""

import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from jaxdiff.evaluation import text as text_evaluation
from jaxdiff.metrics import corpus_bleu

NAME = "text_inpainting"
CLAIM = ("Diffusion infills text using both sides of a gap and is more accurate than the "
         "autoregressive baseline, which sees only the left context.")
NUM_ROWS = 128
COMPARED = ("absorbing", "masked")   # the diffusion runs checked against the AR baseline
WINDOW = 64
STRIDE = 499
STEPS = 64
TEMPLATE = "the [MASK] sat on the [MASK]"
TEMPLATE_SPANS = (3, 3)
TEMPLATE_SAMPLES = 4
Z = 3.0


def gap_windows(test_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``NUM_ROWS`` windows ``int32 [N, WINDOW]`` and their gaps ``bool [N, WINDOW]`` (True
    on the characters of the word that covers the middle character)."""
    space = jd.tasks.TOKENIZER.alphabet.index(" ")
    rows, gaps = [], []
    start = 0
    while len(rows) < NUM_ROWS:
        if start + WINDOW > test_ids.size:
            raise ValueError(f"the test split holds only {len(rows)} usable windows, "
                             f"fewer than NUM_ROWS = {NUM_ROWS}")
        row = test_ids[start:start + WINDOW].astype(np.int32)
        start += STRIDE
        mid = WINDOW // 2
        if row[mid] == space:
            continue
        lo, hi = mid, mid
        while lo > 0 and row[lo - 1] != space:
            lo -= 1
        while hi < WINDOW - 1 and row[hi + 1] != space:
            hi += 1
        if lo == 0 or hi == WINDOW - 1:   # the word must lie inside the window
            continue
        gap = np.zeros(WINDOW, bool)
        gap[lo:hi + 1] = True
        rows.append(row)
        gaps.append(gap)
    return np.stack(rows), np.stack(gaps)


def score_infills(filled: np.ndarray, rows: np.ndarray, gaps: np.ndarray) -> dict:
    """Character accuracy on the gaps (mean, standard error, per row), exact-word rate,
    character BLEU, whether every known character was kept, and examples."""
    decode = jd.tasks.TOKENIZER.decode
    per_row = np.array([np.mean(f[g] == r[g]) for f, r, g in zip(filled, rows, gaps,
                                                                   strict=True)])
    words = [(decode(f[g]), decode(r[g])) for f, r, g in zip(filled, rows, gaps, strict=True)]
    known_kept = bool(np.all(filled[~gaps] == rows[~gaps]))
    bleu = corpus_bleu([list(h) for h, _ in words], [[list(r)] for _, r in words])
    return {"char_accuracy": float(per_row.mean()),
            "char_accuracy_stderr": float(per_row.std(ddof=1) / np.sqrt(len(per_row))),
            "exact_word_rate": float(np.mean([h == r for h, r in words])),
            "char_bleu": float(bleu), "known_characters_kept": known_kept,
            "per_row": per_row.tolist(),
            "examples": [{"truth": decode(r), "filled": decode(f), "word": w[1],
                          "infill": w[0]} for f, r, w in list(zip(filled, rows, words,
                                                                  strict=True))[:6]]}


def _template_fills(run, params) -> list[str]:
    """``TEMPLATE`` (spans ``TEMPLATE_SPANS``) filled ``TEMPLATE_SAMPLES`` times."""
    tokenizer = jd.tasks.TOKENIZER
    ids = jd.discrete.expand_template(TEMPLATE, list(TEMPLATE_SPANS), tokenizer)
    values = np.tile(ids, (TEMPLATE_SAMPLES, 1)).astype(np.int32)
    filled = _text_runs.infill(run, params, jax.random.key(_text_runs.SEED + 7), values,
                               values != tokenizer.mask_id, steps=STEPS)
    return [tokenizer.decode(row) for row in filled]


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    runs = {p: _text_runs.trained_run(p) for p in _text_runs.PROCESSES}
    test_ids = text_evaluation.test_rows(runs["masked"][0]).reshape(-1)
    rows, gaps = gap_windows(test_ids)
    models = {}
    for process, (run_, state) in runs.items():
        filled = _text_runs.infill(run_, state.ema_params, jax.random.key(_text_runs.SEED),
                                   rows, ~gaps, steps=STEPS)
        models[process] = score_infills(filled, rows, gaps)
        models[process]["template_fills"] = _template_fills(run_, state.ema_params)
    ar = np.asarray(models["autoregressive"]["per_row"])
    gaps_vs_ar = {}
    for p in _text_runs.DIFFUSION:
        d = np.asarray(models[p]["per_row"]) - ar
        gaps_vs_ar[p] = {"mean": float(d.mean()),
                         "stderr": float(d.std(ddof=1) / np.sqrt(len(d)))}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"rows": NUM_ROWS, "window": WINDOW, "stride": STRIDE, "steps": STEPS,
                  "mean_gap_length": float(gaps.sum(1).mean()), "template": TEMPLATE,
                  "template_spans": list(TEMPLATE_SPANS), "seed": _text_runs.SEED},
        "tolerances": {"z": Z},
        "models": {p: {k: v for k, v in m.items() if k != "per_row"}
                   for p, m in models.items()},
        "accuracy_minus_autoregressive": gaps_vs_ar,
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        z = results["tolerances"]["z"]
        for process, model in results["models"].items():
            if not model["known_characters_kept"]:
                failures.append(f"{process}: a known character changed")
            if len(model["template_fills"]) != TEMPLATE_SAMPLES or any(
                    len(s) != len(TEMPLATE) - 2 * len("[MASK]") + sum(TEMPLATE_SPANS)
                    for s in model["template_fills"]):
                failures.append(f"{process}: template fills of the wrong count or length")
        for process in COMPARED:
            gap = results["accuracy_minus_autoregressive"][process]
            if not gap["mean"] > z * gap["stderr"]:
                failures.append(f"{process} - autoregressive character accuracy = "
                                f"{gap['mean']:.4f}, not above {z} x {gap['stderr']:.4f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
