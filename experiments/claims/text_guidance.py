r"""Claim 21: classifier-free guidance steers a label-conditioned text diffusion model towards
the attribute it is given, trading diversity for it.

The attribute: which group of source articles a 256-character window comes from
(:func:`jaxdiff.data.article_labels`: page ``i`` of the embedded corpus in group
``i mod 4``). The model: ``experiments/configs/text_cpu.py:masked_conditional``, the masked
run of :mod:`claims._text_runs` with the group as its label (dropped at 0.1). The judge: a
character-trigram naive Bayes classifier (:mod:`jaxdiff.metrics.attribute`) fitted on the
even-numbered 256-character rows of the training split and scored on the odd-numbered ones
(its accuracy on real text is the ceiling). For each guidance scale :math:`w` in
:data:`SCALES` the model draws :data:`NUM_SAMPLES` sequences (the four groups in turn;
MDLM's ancestral sampler, :data:`STEPS` steps, guidance on the x0 logits,
:func:`jaxdiff.discrete.guided_denoiser`); measured: the classifier's accuracy on them
against the group asked for, its mean probability of that group, and the mean character
entropy of the samples. Diagnostic: the held-out conditional bound given the true groups,
the null label and the wrong groups (each window's group plus one), in bits per character on
:data:`DIAGNOSTIC_BATCHES` validation batches -- how much the model learnt from the label,
which is what guidance amplifies.

Expected, stated before the run (Ho & Salimans 2022; Schiff et al. 2024, guidance trades
diversity for control): accuracy at the largest :math:`w` exceeds accuracy at :math:`w = 0`
by at least :data:`MIN_GAIN`, accuracy at :math:`w = 0` exceeds chance (the largest group's
share) -- the label is learnt at all --, and character entropy at the largest :math:`w` is
below that at :math:`w = 0`.
"""

import time

import jax
import numpy as np

import jaxdiff as jd
from claims import _text_runs
from jaxdiff.evaluation import text as text_evaluation
from jaxdiff.metrics.attribute import fit_ngram_classifier

NAME = "text_guidance"
CLAIM = ("Classifier-free guidance on the x0 logits raises the share of a label-conditioned "
         "text diffusion model's samples that carry the requested attribute, and lowers "
         "their entropy (Ho & Salimans 2022; Schiff et al. 2024).")
PROCESS = "masked_conditional"
SCALES = (0.0, 1.0, 2.0, 4.0)
STEPS = 128
NUM_SAMPLES = 128
ORDER = 3
MIN_GAIN = 0.05
DIAGNOSTIC_BATCHES = 8
DIAGNOSTIC_DRAWS = 4


def attribute_classifier(config):
    """The trigram classifier of the training split's even rows, and its accuracy on the odd
    rows."""
    d = config.data
    rows = jd.data.chunk(jd.data.load_text_corpus(d.name, "train"), d.seq_len)
    labels = jd.tasks.text.row_labels(config, "train")
    alphabet = len(jd.tasks.TOKENIZER.alphabet)
    classifier = fit_ngram_classifier(rows[0::2], labels[0::2], num_classes=d.article_groups,
                                      alphabet=alphabet, order=ORDER)
    return classifier, classifier.accuracy(rows[1::2], labels[1::2]), labels


def label_information(run_, params) -> dict:
    """The held-out bound (bits per character) given the true, the null and the wrong
    labels, on the same times and masks."""
    held_out = jax.jit(run_.task.held_out(run_))
    groups = run_.config.data.article_groups
    relabel = {"true": lambda y: y, "null": lambda y: np.full_like(y, groups),
               "wrong": lambda y: (y + 1) % groups}
    bits = {}
    for name, labels_of in relabel.items():
        nats = [np.asarray(held_out(params, jax.random.key(100 * i + r),
                                    {**batch, "label": labels_of(batch["label"])})).mean()
                for i, batch in enumerate(run_.task.modality.eval_batches(run_)
                                          [:DIAGNOSTIC_BATCHES])
                for r in range(DIAGNOSTIC_DRAWS)]
        bits[name] = float(np.mean(nats) / (run_.config.data.seq_len * np.log(2)))
    return bits


def run(out_dir) -> dict:
    del out_dir
    start = time.time()
    run_, state = _text_runs.trained_run(PROCESS)
    classifier, real_accuracy, train_labels = attribute_classifier(run_.config)
    groups = run_.config.data.article_groups
    wanted = np.arange(NUM_SAMPLES) % groups
    key = jax.random.key(_text_runs.SEED)
    results = {}
    for w in SCALES:   # one compiled batch of all the samples per scale
        sample = jd.train.make_sampler(run_, count=NUM_SAMPLES, num_steps=STEPS,
                                       classes=wanted, guidance_scale=w)
        rows = np.asarray(sample(key, state.ema_params))
        texts = [jd.tasks.TOKENIZER.decode(row) for row in rows]
        posterior = np.exp(classifier.log_probs(rows))
        results[f"w_{w:g}"] = {
            "guidance_scale": w,
            "attribute_accuracy": classifier.accuracy(rows, wanted),
            "mean_probability_of_the_group": float(posterior[np.arange(len(rows)),
                                                             wanted].mean()),
            "character_entropy": text_evaluation.sample_quality(texts)["character_entropy"],
            "example": texts[0][:60]}
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"scales": list(SCALES), "steps": STEPS, "num_samples": NUM_SAMPLES,
                  "groups": groups, "classifier": f"character {ORDER}-gram naive Bayes",
                  "run": _text_runs.run_info(PROCESS)},
        "tolerances": {"min_gain": MIN_GAIN},
        "chance": float(np.bincount(train_labels).max() / train_labels.size),
        "real_data_accuracy": real_accuracy,
        "held_out_bpc_given_labels": label_information(run_, state.ema_params),
        "samples": results,
        "runtime_s": round(time.time() - start, 1),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        if results["tolerances"]["min_gain"] != MIN_GAIN:
            failures.append(f"tolerance {results['tolerances']['min_gain']}, expected "
                            f"{MIN_GAIN}")
        samples = results["samples"]
        low, high = samples[f"w_{SCALES[0]:g}"], samples[f"w_{SCALES[-1]:g}"]
        gain = high["attribute_accuracy"] - low["attribute_accuracy"]
        if not gain >= MIN_GAIN:
            failures.append(f"guidance raises the attribute accuracy by {gain:.3f} from "
                            f"w={SCALES[0]:g} to w={SCALES[-1]:g}, < {MIN_GAIN}")
        if not low["attribute_accuracy"] > results["chance"]:
            failures.append(f"unguided accuracy {low['attribute_accuracy']:.3f} is not above "
                            f"chance {results['chance']:.3f}")
        if not high["character_entropy"] < low["character_entropy"]:
            failures.append(f"character entropy {high['character_entropy']:.3f} at "
                            f"w={SCALES[-1]:g} is not below {low['character_entropy']:.3f}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
