"""Caption accuracy: does a generated canvas show what its caption says, where it says it?

A CLIP-score analogue that needs no web model, for the captioned pairs of
:mod:`jaxdiff.data.captions`: the in-domain classifier of the 20 kinds
(:func:`region_classifier`, trained on the single 16x16 items of the pairs' training split)
reads the two item regions of each canvas -- the caption's layout says where they are -- and
a canvas is right when both regions are the caption's kinds. Chance is 1 / 400.

:func:`caption_scores` reports, for images drawn for caption ids: the accuracy (both regions
right), each region's accuracy, a within-caption **spread** (the mean over captions of the
per-pixel standard deviation across the images of that caption: the diversity that guidance
trades for accuracy), and the Fréchet distance of the regions' classifier features (both
regions' penultimate features side by side) to those of the real test canvases, an
in-domain FID of the pairs. :func:`evaluate_text_to_image` draws them from a trained
caption-conditioned run for each guidance scale, on seen and on held-out combinations.
"""

import os
import pathlib

import jax
import numpy as np

from jaxdiff.data import captions as pairs
from jaxdiff.data.arrays import ArrayDataset
from jaxdiff.evaluation.classifier import (
    TrainedClassifier,
    classifier_accuracy,
    classifier_name,
    classifier_path,
    load_classifier,
    save_classifier,
    train_classifier,
)
from jaxdiff.evaluation.scores import inception_fid_or_why
from jaxdiff.metrics.features import extract_features
from jaxdiff.metrics.frechet import fid_from_stats, stats_from_features

ITEMS_NAME = f"{pairs.PAIRS_NAME}_items"
CLASSIFIER_STEPS = 1500


def item_dataset(split: str) -> ArrayDataset:
    """The single items of the pairs' ``split`` as a 20-kind labelled dataset."""
    images, kinds = pairs.item_images(split)
    return ArrayDataset(images=images, labels=kinds, num_classes=len(pairs.KINDS),
                        name=f"{ITEMS_NAME}:{split}")


def region_classifier(*, cache_dir: str | os.PathLike | None = None,
                      steps: int = CLASSIFIER_STEPS, seed: int = 0,
                      recompute: bool = False) -> TrainedClassifier:
    """The 20-kind item classifier (:func:`~jaxdiff.evaluation.train_classifier` on
    :func:`item_dataset` ``("train")``), trained once and cached like the other in-domain
    classifiers."""
    name = classifier_name(ITEMS_NAME, image_size=None, steps=steps, seed=seed, width=32,
                           hidden=128, batch_size=128, learning_rate=2e-3)
    path = classifier_path(name, cache_dir=cache_dir)
    if path.exists() and not recompute:
        return load_classifier(path, expected_name=name)
    classifier = train_classifier(item_dataset("train"), steps=steps, seed=seed, name=name)
    save_classifier(path, classifier)
    return classifier


def _combos(caption_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.array([(a, b, pairs.LAYOUTS.index(layout))
                      for a, b, layout in pairs.combinations()])
    ids = np.asarray(caption_ids)
    if ids.ndim != 1 or np.any(ids < 0) or np.any(ids >= len(table)):
        raise ValueError(f"caption_ids must be int [N] in [0, {len(table)}), got "
                         f"{ids.dtype}{list(ids.shape)}")
    return table[ids, 0], table[ids, 1], table[ids, 2]


def region_features(classifier: TrainedClassifier, images: np.ndarray,
                    caption_ids: np.ndarray, *, batch_size: int = 500):
    """``(logits_first, logits_second, features [N, 2 * hidden])`` of the item regions that
    each caption's layout places."""
    _, _, layouts = _combos(caption_ids)
    firsts, seconds = pairs.regions(np.asarray(images, np.float32), layouts)
    logits = [extract_features(classifier.logits_fn(), r, batch_size=batch_size)
              for r in (firsts, seconds)]
    features = np.concatenate([extract_features(classifier.features_fn(), r,
                                                batch_size=batch_size)
                               for r in (firsts, seconds)], axis=1)
    return logits[0], logits[1], features


def caption_scores(classifier: TrainedClassifier, images: np.ndarray, caption_ids, *,
                   reference=None, batch_size: int = 500) -> dict:
    """The module docstring's numbers for ``images`` drawn for ``caption_ids`` (``int [N]``);
    ``reference``: the real canvases' region-feature statistics (``stats_from_features``), for
    the Fréchet distance."""
    first, second, _ = _combos(caption_ids)
    logits_a, logits_b, features = region_features(classifier, images, caption_ids,
                                                   batch_size=batch_size)
    right_a = np.argmax(logits_a, 1) == first
    right_b = np.argmax(logits_b, 1) == second
    ids = np.asarray(caption_ids)
    spreads = [np.asarray(images)[ids == c].std(axis=0).mean()
               for c in np.unique(ids) if np.sum(ids == c) > 1]
    out = {"caption_accuracy": float(np.mean(right_a & right_b)),
           "first_region_accuracy": float(np.mean(right_a)),
           "second_region_accuracy": float(np.mean(right_b)),
           "within_caption_spread": float(np.mean(spreads)) if spreads else float("nan"),
           "images": int(len(ids))}
    if reference is not None:
        out["region_fid"] = float(fid_from_stats(stats_from_features(features), reference))
    return out


def real_reference(classifier: TrainedClassifier, *, batch_size: int = 500):
    """``(stats, scores)``: the region-feature statistics of the real test canvases and their
    own caption scores (the data's accuracy: the classifier's ceiling on canvases)."""
    test = pairs.load_pairs("test")
    _, _, features = region_features(classifier, test.images, test.labels,
                                     batch_size=batch_size)
    stats = stats_from_features(features)
    return stats, caption_scores(classifier, test.images, test.labels, batch_size=batch_size)


def evaluate_text_to_image(workdir, *, guidance_scales=(0.0, 1.0, 2.0, 4.0, 6.0),
                           samples_per_caption: int = 4, captions_per_set: int = 80,
                           held_out: bool = True,
                           sampler: str | None = None, steps: int | None = None,
                           seed: int = 0, inception: bool = False,
                           inception_weights: str | os.PathLike | None = None,
                           cache_dir: str | os.PathLike | None = None,
                           progress: bool = False) -> dict:
    """Caption scores of a caption-conditioned run on the pairs, per guidance scale ``w``
    (0: the conditional model unguided), on ``captions_per_set`` seen and (``held_out``) as
    many held-out caption ids (a fixed random choice, seed 0), ``samples_per_caption`` images
    each; with ``inception``, each set's standard Inception FID of the (decoded) samples to the
    real test canvases beside them
    (:func:`~jaxdiff.evaluation.scores.inception_fid_or_why`; biased upwards by the small
    sample count, comparable between runs and scales of the same protocol)."""
    from jaxdiff import train
    from jaxdiff.evaluation import common

    restored = common.restore_run(workdir)
    run = restored.run
    if run.dataset.captions != pairs.CAPTIONS:
        raise ValueError(f"workdir {str(workdir)!r} is not a caption-conditioned run on "
                         f"{pairs.PAIRS_NAME!r}")
    classifier = region_classifier(cache_dir=None if cache_dir is None
                                   else pathlib.Path(cache_dir) / "classifiers")
    reference, real = real_reference(classifier)
    held = pairs.held_out_ids()
    seen = np.setdiff1d(np.arange(len(pairs.CAPTIONS)), held)
    rng = np.random.default_rng(0)
    sets = {"seen": rng.choice(seen, captions_per_set, replace=False),
            "held_out": rng.choice(held, min(captions_per_set, len(held)), replace=False)}
    if not held_out:
        del sets["held_out"]
    report = {"workdir": str(workdir), "step": restored.step, "real_test_canvases": real,
              "classifier": {"name": classifier.name, "item_test_accuracy":
                             classifier_accuracy(classifier, item_dataset("test"))},
              "protocol": {"samples_per_caption": samples_per_caption,
                           "captions": {k: len(v) for k, v in sets.items()},
                           "sampler": sampler or run.task.samplers[0], "steps": steps,
                           "seed": seed, "inception_fid": "uint8, 299x299, to the "
                           "whole test split" if inception else "not computed"},
              "by_guidance": []}
    for w in guidance_scales:
        row = {"guidance_scale": float(w)}
        for i, (label, ids) in enumerate(sets.items()):
            caption_ids = np.repeat(ids, samples_per_caption).astype(np.int32)
            sample = train.make_sampler(run, sampler=sampler, num_steps=steps,
                                        count=len(caption_ids), classes=caption_ids,
                                        guidance_scale=None if w == 0 else float(w))
            latents = sample(jax.random.fold_in(jax.random.key(seed), i), restored.ema_params)
            images = run.task.modality.to_pixels(run, latents)
            row[label] = caption_scores(classifier, images, caption_ids, reference=reference)
            if inception:
                row[label]["inception_fid"], _ = inception_fid_or_why(
                    images, pairs.load_pairs("test"), dataset_name=pairs.PAIRS_NAME,
                    weights=inception_weights, cache_dir=cache_dir)
        report["by_guidance"].append(row)
        if progress:
            print(row)
    jax.clear_caches()
    return report
