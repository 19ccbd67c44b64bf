r"""Inception Score over any classifier.

Salimans et al., 2016, "Improved techniques for training GANs":

.. math::
    \mathrm{IS} = \exp\Bigl(\mathbb{E}_x\, \mathrm{KL}\bigl(p(y \mid x) \,\Vert\, p(y)\bigr)\Bigr),
    \qquad p(y) = \mathbb{E}_x\, p(y \mid x),

reported as the mean and standard deviation over ``num_splits`` (10) consecutive splits of the
samples, each with its own :math:`p(y)` (the original protocol, as StyleGAN keeps it:
split ``i`` is ``[i N // k, (i + 1) N // k)``).

The classifier is any ``logits_fn(images) -> [B, K]``: the standard ImageNet Inception
(:func:`jaxdiff.metrics.inception_logits_fn`, needs the NVLabs weights with the logits head) or
an in-domain classifier. The score is bounded by ``K``, reached by a confident classifier
whose predictions are spread uniformly over the classes.
"""

import numpy as np

from jaxdiff.metrics.features import FeatureFn, extract_features


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis`` (kept), shifted by the max; all ``-inf`` -> ``-inf``."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def inception_score_from_logits(logits, *, num_splits: int = 10) -> tuple[float, float]:
    """IS mean and standard deviation over splits, from classifier logits ``[N, K]``.

    Computed in float64 from log-probabilities (``log_softmax`` of ``logits``), so a class with
    probability 0 (logit ``-inf``) contributes exactly 0 to the KL. Log-probabilities are
    valid logits too.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"logits must be a [N, K] array with K >= 2, got shape {x.shape}")
    if np.isnan(x).any() or np.isposinf(x).any() or np.isneginf(x).all(axis=1).any():
        raise ValueError("logits must be finite or -inf, with a finite entry in every row")
    if not isinstance(num_splits, int) or not 1 <= num_splits <= x.shape[0]:
        raise ValueError(f"num_splits must be an int in [1, N={x.shape[0]}], got {num_splits!r}")
    log_p = x - _logsumexp(x, axis=1)
    n = x.shape[0]
    scores = []
    for i in range(num_splits):
        part = log_p[i * n // num_splits : (i + 1) * n // num_splits]
        log_marginal = _logsumexp(part, axis=0) - np.log(part.shape[0])
        p = np.exp(part)
        # 0 log 0 = 0: mask before subtracting, so no -inf - (-inf).
        log_ratio = np.where(p > 0, part, 0.0) - np.where(p > 0, log_marginal, 0.0)
        terms = p * log_ratio
        scores.append(np.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(
    logits_fn: FeatureFn, images, *, num_splits: int = 10, **kwargs
) -> tuple[float, float]:
    """IS mean and standard deviation of ``images`` under the classifier ``logits_fn``.

    Args:
      logits_fn: a (jitted) ``images -> [B, K]`` logits function.
      images: an array ``[N, ...]`` or an iterable of batches (see
        :func:`jaxdiff.metrics.map_batches`, whose keyword arguments -- ``batch_size``,
        ``progress``, ``sharding`` -- are accepted here).
      num_splits: number of splits (10 in the standard protocol).
    """
    kwargs.setdefault("desc", "logits")
    logits = extract_features(logits_fn, images, **kwargs)
    return inception_score_from_logits(logits, num_splits=num_splits)
