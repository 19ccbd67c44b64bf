r"""An attribute classifier for text: multinomial naive Bayes on character n-grams.

It measures whether generated text carries an attribute (e.g. which group of source
articles a window comes from, :func:`jaxdiff.data.article_labels`): trained on real labelled
windows, it scores generated ones. A row :math:`x` of token ids in ``[0, A)`` has the
overlapping n-grams :math:`g_1, \dots, g_{L-n+1}` (ids in ``[0, A^n)``), and

.. math::

    \log p(y \mid x) = \log \pi_y + \sum_j \log \theta_{y, g_j} - \log Z(x),\qquad
    \theta_{y, g} = \frac{c_{y, g} + \alpha}{\sum_{g'} c_{y, g'} + \alpha A^n},

with :math:`\pi_y` the classes' shares of the training rows, :math:`c_{y, g}` the count of
n-gram :math:`g` in class :math:`y`'s rows and Laplace smoothing :math:`\alpha` (Manning et
al. 2008, "Introduction to Information Retrieval", sec. 13.2). Fitting is counting; both
run in NumPy, in float64.
"""

import dataclasses

import numpy as np

from jaxdiff._validation import check_int


def ngram_ids(rows: np.ndarray, *, order: int, alphabet: int) -> np.ndarray:
    """The overlapping n-grams of each row as ids in ``[0, alphabet^order)``:
    ``int64 [N, L - order + 1]`` (most significant token first)."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"rows must be an int array [N, L], got {rows.dtype}{list(rows.shape)}")
    if rows.shape[1] < order:
        raise ValueError(f"rows have {rows.shape[1]} tokens, fewer than order={order}")
    if rows.size and (rows.min() < 0 or rows.max() >= alphabet):
        raise ValueError(f"rows must hold ids in [0, alphabet={alphabet}), got values in "
                         f"[{rows.min()}, {rows.max()}]")
    grams = np.zeros((rows.shape[0], rows.shape[1] - order + 1), np.int64)
    for k in range(order):
        grams = grams * alphabet + rows[:, k:rows.shape[1] - order + 1 + k]
    return grams


@dataclasses.dataclass(frozen=True)
class NgramClassifier:
    """A fitted classifier (:func:`fit_ngram_classifier`).

    Attributes:
      log_prior: ``float64 [K]``, :math:`\\log \\pi_y`.
      log_likelihood: ``float64 [K, alphabet^order]``, :math:`\\log \\theta_{y, g}`.
      order: n.
      alphabet: A, the number of token ids.
    """

    log_prior: np.ndarray
    log_likelihood: np.ndarray
    order: int
    alphabet: int

    def log_probs(self, rows: np.ndarray) -> np.ndarray:
        """:math:`\\log p(y \\mid x)` of each row, ``float64 [N, K]``."""
        grams = ngram_ids(rows, order=self.order, alphabet=self.alphabet)
        scores = self.log_prior[None, :] + self.log_likelihood[:, grams].sum(axis=-1).T
        top = scores.max(axis=-1, keepdims=True)
        return scores - top - np.log(np.exp(scores - top).sum(axis=-1, keepdims=True))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The most probable class of each row, ``int64 [N]``."""
        return np.argmax(self.log_probs(rows), axis=-1)

    def accuracy(self, rows: np.ndarray, labels: np.ndarray) -> float:
        """The share of ``rows`` classified as their ``labels``."""
        labels = np.asarray(labels)
        if labels.shape != (len(rows),):
            raise ValueError(f"labels must have shape [{len(rows)}], got {list(labels.shape)}")
        return float(np.mean(self.predict(rows) == labels))


def fit_ngram_classifier(rows: np.ndarray, labels: np.ndarray, *, num_classes: int,
                         alphabet: int, order: int = 3,
                         smoothing: float = 1.0) -> NgramClassifier:
    """Naive Bayes on the character n-grams of labelled ``rows`` (module doc).

    Args:
      rows: ``int [N, L]`` token ids in ``[0, alphabet)``.
      labels: ``int [N]`` classes in ``[0, num_classes)``; every class must occur.
      num_classes: K.
      alphabet: A.
      order: n, the n-gram length.
      smoothing: Laplace's :math:`\\alpha > 0`.
    """
    num_classes, alphabet = check_int("num_classes", num_classes, 2), check_int("alphabet",
                                                                                alphabet)
    order = check_int("order", order)
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    labels = np.asarray(labels)
    grams = ngram_ids(rows, order=order, alphabet=alphabet)
    if labels.shape != (grams.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be int with shape [{grams.shape[0]}], got "
                         f"{labels.dtype}{list(labels.shape)}")
    class_rows = np.bincount(labels, minlength=num_classes)
    if class_rows.size != num_classes or np.any(class_rows == 0):
        raise ValueError(f"labels must cover every class in [0, {num_classes}); rows per "
                         f"class: {class_rows.tolist()}")
    vocabulary = alphabet ** order
    counts = np.bincount((labels[:, None] * vocabulary + grams).ravel(),
                         minlength=num_classes * vocabulary).reshape(num_classes, vocabulary)
    smoothed = counts + smoothing
    return NgramClassifier(
        log_prior=np.log(class_rows / class_rows.sum()),
        log_likelihood=np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True)),
        order=order, alphabet=alphabet)
