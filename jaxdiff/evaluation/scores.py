"""Scores of generated images against a dataset's split (reference statistics cached): under
the in-domain classifier (classifier FID / IS, the class histogram of samples, a mode-collapse
check) and the standard Inception FID."""

import os

import numpy as np

from jaxdiff import data as jdata
from jaxdiff.evaluation.classifier import TrainedClassifier, classifier_accuracy
from jaxdiff.evaluation.common import unavailable
from jaxdiff.metrics.features import extract_features, feature_stats
from jaxdiff.metrics.frechet import FeatureStats, fid_from_stats
from jaxdiff.metrics.inception import inception_feature_fn, quantize_images
from jaxdiff.metrics.inception_score import inception_score_from_logits
from jaxdiff.metrics.inception_weights import load_inception_params
from jaxdiff.metrics.stats_cache import INCEPTION_EXTRACTOR, cached_reference_stats

IS_SPLITS = 10
REFERENCE_SPLIT = "test"


def dataset_key(dataset: jdata.ArrayDataset, name: str) -> str:
    return f"{name.replace(':', '_')}-{dataset.images.shape[1]}px"


def classifier_reference_stats(classifier: TrainedClassifier, dataset: jdata.ArrayDataset, *,
                               dataset_name: str, split: str = REFERENCE_SPLIT,
                               cache_dir: str | os.PathLike | None = None,
                               batch_size: int = 500, progress: bool = False) -> FeatureStats:
    """The classifier's penultimate-feature statistics of ``dataset`` (the reference of
    classifier FID), cached under ``dataset=<dataset_name>-<H>px``, ``split``,
    ``extractor=classifier.name``."""
    return cached_reference_stats(
        lambda: feature_stats(classifier.features_fn(), dataset.images, batch_size=batch_size,
                              progress=progress, desc=f"classifier features {split}"),
        dataset=dataset_key(dataset, dataset_name), split=split, extractor=classifier.name,
        cache_dir=cache_dir)


def classifier_fid(classifier: TrainedClassifier, images, reference: FeatureStats, *,
                   batch_size: int = 500, progress: bool = False) -> float:
    """Classifier FID of ``images`` (``[N, H, W, C]`` in [-1, 1]) against ``reference``;
    the test split against its own reference statistics gives ~0 (the protocol check)."""
    stats = feature_stats(classifier.features_fn(), images, batch_size=batch_size,
                          progress=progress, desc="classifier features")
    return fid_from_stats(stats, reference)


def spread(size: int, count: int) -> np.ndarray:
    """``min(count, size)`` indices of a dataset of ``size`` in a fixed random order (seed 0),
    so that a subset or the IS splits do not follow the file's order (MNIST-5k is sorted by
    class: its first 1000 images are zeros and ones)."""
    return np.random.default_rng(0).permutation(size)[:min(count, size)]


def _histogram(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=num_classes) / max(len(labels), 1)


def classifier_scores(classifier: TrainedClassifier, samples, test: jdata.ArrayDataset,
                      train_images, *, dataset_name: str,
                      cache_dir: str | os.PathLike | None = None, batch_size: int = 500,
                      progress: bool = False) -> tuple[dict, dict]:
    """``(results, protocol)``: the classifier FID of ``samples`` against ``test`` and of
    ``train_images`` (the floor at that count), the classifier IS of the samples and of the
    test split (10 splits, the test images in the order of :func:`spread`), and the class
    histogram of the samples against the test labels with its total-variation distance."""
    accuracy = classifier_accuracy(classifier, test, batch_size=batch_size)
    ref = classifier_reference_stats(classifier, test, dataset_name=dataset_name,
                                     cache_dir=cache_dir, batch_size=batch_size,
                                     progress=progress)
    fid = classifier_fid(classifier, samples, ref, batch_size=batch_size, progress=progress)
    fid_floor = classifier_fid(classifier, train_images, ref, batch_size=batch_size)
    logits = extract_features(classifier.logits_fn(), samples, batch_size=batch_size)
    is_mean, is_std = inception_score_from_logits(logits, num_splits=IS_SPLITS)
    test_logits = extract_features(classifier.logits_fn(), test.images, batch_size=batch_size)
    test_is, _ = inception_score_from_logits(test_logits[spread(len(test), len(test))],
                                             num_splits=min(IS_SPLITS, len(test)))
    k = classifier.config.num_classes
    sample_hist = _histogram(np.argmax(logits, axis=1), k)
    data_hist = _histogram(test.labels, k)
    results = {
        "classifier_fid": fid, "classifier_fid_train_vs_test": fid_floor,
        "classifier_is_mean": is_mean, "classifier_is_std": is_std,
        "classifier_is_test_data": test_is,
        "class_histogram": {
            "samples": sample_hist.tolist(), "test_data": data_hist.tolist(),
            "total_variation": float(0.5 * np.abs(sample_hist - data_hist).sum()),
            "max_sample_fraction": float(sample_hist.max()),
            "min_sample_fraction": float(sample_hist.min())}}
    protocol = {"name": classifier.name, "test_accuracy": accuracy,
                "trained_on": f"{dataset_name}:train",
                "feature_dim": classifier.config.hidden,
                "fid_floor_train_images": int(len(train_images)), "is_splits": IS_SPLITS}
    return results, protocol


def inception_fid_or_why(images, test: jdata.ArrayDataset, *, dataset_name: str,
                         enabled: bool = True, weights: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None, batch_size: int = 500,
                         progress: bool = False) -> tuple[float | str, dict | None]:
    """``(fid, protocol)``: the standard FID (Inception-v3 pool features of the NVLabs weights,
    :func:`~jaxdiff.metrics.load_inception_params`) of ``images``, quantized to uint8 and
    resized to 299x299, against the whole ``test`` split (statistics cached under
    ``extractor=inception-2015-12-05``); ``("unavailable: <why>", None)`` when disabled or the
    weights cannot be loaded."""
    if not enabled:
        return "unavailable: disabled by the caller (inception=False)", None
    try:
        params = load_inception_params(weights)
    except (OSError, ValueError) as err:
        return unavailable(err), None
    fn = inception_feature_fn(params)
    feats = lambda x: fn(quantize_images(x))  # noqa: E731
    batch = min(batch_size, 100)
    ref = cached_reference_stats(
        lambda: feature_stats(feats, test.images, batch_size=batch, progress=progress,
                              desc="inception features test"),
        dataset=dataset_key(test, dataset_name), split=REFERENCE_SPLIT,
        extractor=INCEPTION_EXTRACTOR, cache_dir=cache_dir)
    gen = feature_stats(feats, images, batch_size=batch, progress=progress,
                        desc="inception features samples")
    protocol = {"extractor": INCEPTION_EXTRACTOR, "input": "uint8 quantized, bilinear-resized "
                "to 299x299 (grayscale repeated to RGB by the network)"}
    return fid_from_stats(gen, ref), protocol
