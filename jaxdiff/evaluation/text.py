r"""The evaluation report of a trained text run (D3PM, masked diffusion or the autoregressive
baseline): likelihood, sample quality and generation speed, as JSON and Markdown.

:func:`evaluate_text_run` restores the newest checkpoint of a workdir written by
:func:`jaxdiff.train.train`, takes its **EMA parameters** and measures:

* **bits per character on the test split**: the first ``examples`` rows of the test split
  cut into ``seq_len``-token rows (:func:`jaxdiff.data.chunk`), each row's bound in nats
  divided by ``seq_len * c * ln 2``, with the standard error over rows; ``c`` is 1 for
  characters, the test split's measured characters per token for subword tokens. The bound is, per
  process: D3PM's :math:`L_{vb}` estimated with ``bound_samples`` stratified steps
  (:func:`jaxdiff.discrete.d3pm_elbo`, unbiased); the masked-diffusion ELBO with
  ``bound_samples`` stratified times (:func:`jaxdiff.discrete.masked_elbo`, unbiased); the
  exact NLL of the autoregressive model (:func:`jaxdiff.autoregressive.sequence_nll`).
  Row batch ``i`` uses key ``fold_in(fold_in(key(seed), 1), i)``. A label-conditioned run's
  bound (and token accuracy) is the conditional one, given each row's article group;
* **perplexity bound** per character, :math:`\exp(\text{nats per character})`;
* **token accuracy per timestep** (diffusion only): argmax :math:`x_0` accuracy in 10
  buckets of the process's time (:func:`jaxdiff.metrics.d3pm_token_accuracy` /
  :func:`~jaxdiff.metrics.masked_token_accuracy`) on the same rows;
* **samples**: ``num_samples`` sequences of ``seq_len`` characters from the run's sampler
  (:func:`jaxdiff.train.make_sampler`: D3PM ancestral or masked unmasking with ``steps``
  steps; the autoregressive model left to right with its key-value cache), drawn in
  batches of ``batch_size``, batch ``i`` with key ``fold_in(fold_in(key(seed), 0), i)``
  (a conditional run's unguided, the groups in turn);
* **generation time**: the median wall time of one jitted batch of ``batch_size`` samples
  (compiled beforehand, ``timing_rounds`` calls);
* **sample quality** (:func:`sample_quality`): distinct-1..4 and self-BLEU over the words of
  the samples (whitespace tokens, sacreBLEU's exponential smoothing), and with an
  autoregressive run (``ar_workdir``, or the run itself when it is one) the generative
  perplexity of the samples under it; the same numbers for ``num_samples`` real test rows
  are the reference;
* **MAUVE** (with ``mauve=True``): the samples against those test rows
  (:mod:`jaxdiff.metrics.mauve`: the authors' package on all-MiniLM-L6-v2 sentence
  embeddings, not the paper's GPT-2 large; noisy below a few hundred samples).

:func:`write_text_report` writes ``metrics.json`` and ``metrics.md``;
``experiments/evaluate.py`` is the command (it picks the report of the run's modality).
"""

import math
import os
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdiff import discrete, train
from jaxdiff import models as jm
from jaxdiff._validation import check_int
from jaxdiff.evaluation.common import format_value, restore_run, wall_time_lines, write_files
from jaxdiff.metrics.mauve import mauve_score, text_features
from jaxdiff.metrics.text import distinct_n, sample_entropy, self_bleu
from jaxdiff.tasks.text import (
    characters_per_token,
    row_labels,
    split_rows,
    text_denoiser,
    text_tokenizer,
)
from jaxdiff.units import bits_per_unit

DISTINCT_ORDERS = (1, 2, 3, 4)
ACCURACY_BUCKETS = 10


def test_rows(run: train.Run, examples: int | None = None) -> np.ndarray:
    """The first ``examples`` rows (all if None) of the run's test split in its tokens,
    ``int32 [N, L]``."""
    rows = split_rows(run.config, "test")
    return rows if examples is None else rows[:check_int("examples", examples, 1)]


def bound_fn(run: train.Run, *, bound_samples: int):
    """``bound(params, key, tokens) -> nats [B]``, jitted: the run's NLL bound per row (its
    task's estimator)."""
    return jax.jit(run.task.evaluation.bound(run, bound_samples=bound_samples))


def row_bits_per_char(run: train.Run, params, rows: np.ndarray, *, bound_samples: int,
                      seed: int, batch_size: int, labels: np.ndarray | None = None,
                      progress: bool = False) -> np.ndarray:
    """Each row's bound in bits per character, ``float64 [N]`` (see the module doc for the
    estimator and its keys; the rows are test rows: a subword run's bound per token converts
    with the test split's characters per token), conditioned on the rows' ``labels`` for a
    label-conditioned run (required there); rows go in jitted batches of ``batch_size`` (a
    progress bar with ``progress``)."""
    conditional = run.config.data.conditional
    if conditional != (labels is not None):
        raise ValueError("labels (one per row) must be given exactly for a label-conditioned "
                         f"run; this run has data.conditional={conditional}")
    bound = bound_fn(run, bound_samples=bound_samples)
    key = jax.random.fold_in(jax.random.key(seed), 1)
    starts = range(0, len(rows), batch_size)

    def batch_nats(i, start):
        window = slice(start, start + batch_size)
        inputs = [jnp.asarray(_padded(rows[window], batch_size))]
        if conditional:
            inputs.append(jnp.asarray(_padded(np.asarray(labels)[window], batch_size)))
        return np.asarray(bound(params, jax.random.fold_in(key, i), *inputs))[
            :len(rows[window])]

    nats = np.concatenate([batch_nats(i, start) for i, start in
                           enumerate(tqdm(starts, desc="bits/char", disable=not progress))])
    ratio = characters_per_token(run.config, "test")
    if ratio is None:
        raise ValueError("a pre-tokenised corpus (data.name='tokens') has no characters: "
                         "its held-out metric is the perplexity per token (eval_ppl in "
                         "metrics.jsonl)")
    return bits_per_unit(nats.astype(np.float64), rows.shape[1] * ratio)


def bits_per_char(run: train.Run, params, rows: np.ndarray, *, bound_samples: int, seed: int,
                  batch_size: int, labels: np.ndarray | None = None,
                  progress: bool = False) -> dict:
    """The test bound of ``rows`` (given their ``labels`` in a conditional run) in bits per
    character: mean, standard error over rows, and the perplexity bound (per character)."""
    per_char = row_bits_per_char(run, params, rows, bound_samples=bound_samples, seed=seed,
                                 batch_size=batch_size, labels=labels, progress=progress)
    return {"bpc": float(per_char.mean()),
            "bpc_stderr": float(per_char.std(ddof=1) / math.sqrt(len(per_char)))
            if len(per_char) > 1 else float("nan"),
            "perplexity_bound": float(2.0 ** per_char.mean()),
            "rows": int(len(per_char))}


def _padded(rows: np.ndarray, batch_size: int) -> np.ndarray:
    """``rows`` padded to ``batch_size`` with copies of its first row (one compilation)."""
    missing = batch_size - len(rows)
    return rows if missing == 0 else np.concatenate([rows, np.repeat(rows[:1], missing, 0)])


def draw_text_samples(run: train.Run, params, *, num_samples: int, steps: int | None,
                      seed: int, batch_size: int, timing_rounds: int = 3,
                      progress: bool = False) -> tuple[np.ndarray, dict]:
    """``num_samples`` sampled rows ``int32 [N, L]`` and the generation time of one batch:
    ``{"batch_size", "median_s", "per_sequence_s", "rounds"}`` (compile excluded)."""
    sample = train.make_sampler(run, num_steps=steps, count=batch_size)
    key = jax.random.fold_in(jax.random.key(seed), 0)
    batches = [np.asarray(sample(jax.random.fold_in(key, i), params))
               for i in tqdm(range(-(-num_samples // batch_size)), desc="samples",
                             disable=not progress)]
    times = []
    for r in range(timing_rounds):
        start = time.perf_counter()
        jax.block_until_ready(sample(jax.random.fold_in(key, 10_000 + r), params))
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return (np.concatenate(batches)[:num_samples],
            {"batch_size": batch_size, "median_s": median,
             "per_sequence_s": median / batch_size, "rounds": timing_rounds})


def sample_quality(texts: list[str], *, ar: tuple[train.Run, object] | None = None) -> dict:
    r"""Word-level distinct-n and self-BLEU of ``texts``, the mean entropy of each text's
    characters in nats (:func:`jaxdiff.metrics.sample_entropy`); with ``ar = (run, params)``
    of a run with an exact likelihood (the autoregressive baseline), the generative
    perplexity of the texts under it per character, :math:`\exp(\sum_b \mathcal L_b /
    \sum_b c_b)`, each text scored on its first ``n`` tokens in the judge's tokens (``n`` the
    shortest text's count; all of them for equally long character texts), :math:`c_b` the
    characters they hold. Distinct-n is None when no text has ``n`` words."""
    words = [text.split() for text in texts]
    longest = max(len(w) for w in words)
    quality = {f"distinct_{n}": distinct_n(words, n) if longest >= n else None
               for n in DISTINCT_ORDERS}
    quality["self_bleu"] = self_bleu(words)
    quality["character_entropy"] = sample_entropy([list(text) for text in texts])
    if ar is not None:
        ar_run, ar_params = ar
        judge = text_tokenizer(ar_run.config)
        encoded = [judge.encode(t) for t in texts]
        length = min(len(ids) for ids in encoded)
        tokens = np.stack([ids[:length] for ids in encoded])
        characters = sum(len(judge.decode(row)) for row in tokens)
        nats = bound_fn(ar_run, bound_samples=1)(ar_params, jax.random.key(0),
                                                 jnp.asarray(tokens))
        quality["generative_perplexity"] = float(np.exp(float(jnp.sum(nats)) / characters))
    return quality


def token_accuracy(run: train.Run, params, rows: np.ndarray, *, seed: int,
                   labels: np.ndarray | None = None) -> list[dict]:
    """Argmax x0 accuracy per time bucket (diffusion runs): corrupted and overall; a
    conditional run's given the rows' ``labels``."""
    denoise_fn = discrete.guided_denoiser(
        text_denoiser(run, run.apply_fn(), params),
        None if labels is None else jnp.asarray(labels), guidance_scale=None, null_cond=None)
    key = jax.random.fold_in(jax.random.key(seed), 2)
    curve = run.task.evaluation.token_accuracy(key, denoise_fn, run.process, jnp.asarray(rows),
                                               num_buckets=ACCURACY_BUCKETS)

    def number(x):   # JSON has no NaN: a bucket without corrupted tokens reads null
        return None if np.isnan(x) else float(x)

    return [{"t_from": float(lo), "t_to": float(hi), "corrupted": number(c),
             "overall": number(a)}
            for lo, hi, c, a in zip(curve.edges[:-1], curve.edges[1:], curve.corrupted,
                                    curve.overall, strict=True)]


def evaluate_text_run(workdir: str | os.PathLike, *, num_samples: int = 64,
                      steps: int | None = None, bound_samples: int = 10,
                      examples: int | None = 256, seed: int = 0, batch_size: int = 32,
                      ar_workdir: str | os.PathLike | None = None, mauve: bool = False,
                      progress: bool = True, on_update=None) -> dict:
    """Every text metric of the module doc for the run in ``workdir``; ``steps`` defaults to
    the run's ``train.sample_steps``; progress bars for the long passes; ``on_update(report)``
    is called with the report so far after each part (``experiments/evaluate.py`` writes it,
    so that a stopped evaluation keeps what it measured)."""
    restored = restore_run(workdir)
    run, params = restored.run, restored.ema_params
    if run.task.modality.name != "text":
        raise ValueError(f"workdir {str(workdir)!r} holds a {run.task.name!r} image run; use "
                         "jaxdiff.evaluation.evaluate_run")
    for name, value in (("num_samples", num_samples), ("bound_samples", bound_samples),
                        ("batch_size", batch_size)):
        check_int(name, value, 2 if name == "num_samples" else 1)
    evaluation = run.task.evaluation
    steps = run.config.train.sample_steps if steps is None else check_int("steps", steps, 1)
    # Built (not compiled) here only so that an option the process cannot take fails before
    # the bound's passes; draw_text_samples builds and compiles it.
    train.make_sampler(run, num_steps=steps, count=batch_size)
    ar = (run, params) if evaluation.exact else None
    if ar_workdir is not None:
        ar_restored = restore_run(ar_workdir)
        if not ar_restored.run.task.evaluation.exact:
            raise ValueError(f"ar_workdir {str(ar_workdir)!r} is a "
                             f"{ar_restored.run.task.name!r} run, not a model with an exact "
                             "likelihood (the autoregressive baseline)")
        ar = (ar_restored.run, ar_restored.ema_params)
    wall: dict[str, float] = {}
    report = {
        "kind": "text", "workdir": str(workdir), "process": run.task.name, "step": restored.step,
        "parameters": jm.count_params(params),
        "protocol": {"split": "test", "seq_len": run.config.data.seq_len,
                     "estimator": evaluation.describe(bound_samples), "seed": seed,
                     "num_samples": num_samples,
                     "sampler": f"{run.task.name} {run.task.samplers[0]}"
                     + ("" if steps is None else f", {steps} steps"),
                     "quality_reference": f"the last {num_samples} test rows",
                     "generative_perplexity_under": None if ar is None
                     else str(ar_workdir or workdir)},
        "wall_seconds": wall,
    }

    def part(label, fn):
        start = time.perf_counter()
        report.update(fn())
        wall[label] = round(time.perf_counter() - start, 1)
        if on_update is not None:
            on_update(report)

    rows = test_rows(run, examples)
    labels = (row_labels(run.config, "test")[:len(rows)] if run.config.data.conditional
              else None)
    part("bpc", lambda: bits_per_char(run, params, rows, bound_samples=bound_samples,
                                      seed=seed, batch_size=batch_size, labels=labels,
                                      progress=progress))
    part("token_accuracy", lambda: {"token_accuracy": None if evaluation.token_accuracy is None
                                    else token_accuracy(run, params, rows, seed=seed,
                                                        labels=labels)})

    texts: list[str] = []
    decode = text_tokenizer(run.config).decode

    def samples():
        ids, timing = draw_text_samples(run, params, num_samples=num_samples, steps=steps,
                                        seed=seed, batch_size=batch_size, progress=progress)
        texts.extend(decode(row) for row in ids)
        return {"generation": timing, "examples": texts[:8]}

    part("samples", samples)
    reference = [decode(row) for row in test_rows(run)[-num_samples:]]
    part("quality", lambda: {"quality": {"samples": sample_quality(texts, ar=ar),
                                         "test_data": sample_quality(reference, ar=ar)}})
    if mauve:
        part("mauve", lambda: {"mauve": mauve_score(text_features(reference),
                                                    text_features(texts))})
    return report


def text_report_markdown(report: dict) -> str:
    """The text report as Markdown."""
    p = report["protocol"]
    q, ref = report["quality"]["samples"], report["quality"]["test_data"]
    lines = [f"# Evaluation of `{report['workdir']}` ({report['process']}, step "
             f"{report['step']}, {report['parameters']:,} parameters)", "",
             "| metric | value | protocol |", "|---|---|---|",
             f"| bits per character | {format_value(report['bpc'])} "
             f"+- {format_value(report['bpc_stderr'])} | "
             f"{report['rows']} {p['split']} rows of {p['seq_len']} tokens; "
             f"{p['estimator']} |",
             f"| perplexity bound (per character) | {format_value(report['perplexity_bound'])} | "
             f"exp(nats per character) |",
             f"| generation time, batch of {report['generation']['batch_size']} | "
             f"{format_value(report['generation']['median_s'])} s | {p['sampler']}; median of "
             f"{report['generation']['rounds']} jitted calls |"]
    lines += ["", f"## Sample quality ({p['num_samples']} samples vs "
              f"{p['quality_reference']}; words)", "",
              "| metric | samples | test data |", "|---|---|---|"]
    lines += [f"| {k} | {format_value(v if v is not None else 'n/a')} | "
              f"{format_value(ref[k] if ref[k] is not None else 'n/a')} |"
              for k, v in q.items()]
    if "mauve" in report:
        lines.append(f"| MAUVE vs the test rows (MiniLM features) | "
                     f"{format_value(report['mauve'])} | 1 by definition |")
    if report["token_accuracy"]:
        lines += ["", "## Token accuracy per timestep (argmax x0)", "",
                  "| t | corrupted | overall |", "|---|---|---|"]
        lines += [f"| [{format_value(r['t_from'])}, {format_value(r['t_to'])}) | "
                  f"{format_value(r['corrupted'] if r['corrupted'] is not None else 'n/a')} | "
                  f"{format_value(r['overall'])} |" for r in report["token_accuracy"]]
    lines += ["", "## Samples", ""] + [f"    {text}" for text in report["examples"]]
    return "\n".join(lines + wall_time_lines(report))


def write_text_report(report: dict, directory: str | os.PathLike) -> tuple[pathlib.Path,
                                                                            pathlib.Path]:
    """Writes ``metrics.json`` and ``metrics.md`` into ``directory`` (created)."""
    return write_files(report, directory, markdown=text_report_markdown)
