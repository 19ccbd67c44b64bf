"""Sample-quality metrics: FID (standard Inception or any feature extractor), Inception Score
(any classifier), BLEU / self-BLEU / distinct-n for text.

FID of model samples against a dataset, end to end::

    from jaxdiff import metrics
    params = metrics.load_inception_params()          # $JAXDIFF_INCEPTION_WEIGHTS or cache
    fn = metrics.inception_feature_fn(params)         # jitted [B, H, W, C] in [0, 255] -> [B, 2048]
    ref = metrics.cached_reference_stats(
        lambda: metrics.feature_stats(fn, data_images, batch_size=200, progress=True),
        dataset="digits", split="test", extractor=metrics.INCEPTION_EXTRACTOR)
    gen = metrics.feature_stats(fn, metrics.quantize_images(samples), batch_size=200)
    fid = metrics.fid_from_stats(gen, ref)

"Classifier FID" is the same with a classifier's penultimate features as ``fn`` (and its own
``extractor`` name); the Inception Score takes the classifier's ``logits_fn``.

These are leaf functions of arrays and feature extractors: they know nothing of training
runs. The report of a trained run (every metric with its protocol) is
:mod:`jaxdiff.evaluation`.
"""

from jaxdiff.metrics.diagnostics import (
    Reconstruction,
    TokenAccuracy,
    bucket_edges,
    chain_timesteps,
    d3pm_token_accuracy,
    ddim_reconstruct,
    loss_per_timestep,
    masked_token_accuracy,
    psnr,
    reconstruction_error,
)
from jaxdiff.metrics.features import extract_features, feature_stats, map_batches
from jaxdiff.metrics.frechet import (
    FeatureStats,
    StatsAccumulator,
    fid_from_features,
    fid_from_stats,
    frechet_distance,
    stats_from_features,
    trace_sqrt_product,
)
from jaxdiff.metrics.inception import (
    inception_feature_fn,
    inception_features,
    inception_logits,
    inception_logits_fn,
    quantize_images,
    resize_to_inception,
)
from jaxdiff.metrics.inception_score import inception_score, inception_score_from_logits
from jaxdiff.metrics.inception_weights import (
    INCEPTION_URL,
    WEIGHTS_ENV,
    convert_inception,
    default_inception_weights_path,
    download_inception,
    load_inception_params,
    read_torchscript_tensors,
    resolve_inception_weights,
)
from jaxdiff.metrics.stats_cache import (
    INCEPTION_EXTRACTOR,
    cached_reference_stats,
    load_stats,
    reference_stats_path,
    save_stats,
)
from jaxdiff.metrics.straightness import straightness
from jaxdiff.metrics.text import (
    BleuStats,
    bleu_from_stats,
    bleu_stats,
    corpus_bleu,
    distinct_n,
    sample_entropy,
    self_bleu,
    sentence_bleu,
    tokenize_13a,
)

__all__ = [
    "Reconstruction",
    "TokenAccuracy",
    "bucket_edges",
    "chain_timesteps",
    "d3pm_token_accuracy",
    "ddim_reconstruct",
    "loss_per_timestep",
    "masked_token_accuracy",
    "psnr",
    "reconstruction_error",
    "INCEPTION_EXTRACTOR",
    "INCEPTION_URL",
    "WEIGHTS_ENV",
    "BleuStats",
    "FeatureStats",
    "StatsAccumulator",
    "bleu_from_stats",
    "bleu_stats",
    "cached_reference_stats",
    "convert_inception",
    "corpus_bleu",
    "default_inception_weights_path",
    "distinct_n",
    "download_inception",
    "extract_features",
    "feature_stats",
    "fid_from_features",
    "fid_from_stats",
    "frechet_distance",
    "inception_feature_fn",
    "inception_features",
    "inception_logits",
    "inception_logits_fn",
    "inception_score",
    "inception_score_from_logits",
    "load_inception_params",
    "load_stats",
    "map_batches",
    "quantize_images",
    "read_torchscript_tensors",
    "reference_stats_path",
    "resize_to_inception",
    "resolve_inception_weights",
    "save_stats",
    "sample_entropy",
    "self_bleu",
    "sentence_bleu",
    "stats_from_features",
    "straightness",
    "tokenize_13a",
    "trace_sqrt_product",
]
