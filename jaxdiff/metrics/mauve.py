r"""MAUVE (Pillutla et al. 2021, "MAUVE: Measuring the Gap Between Neural Text and Human
Text using Divergence Frontiers") of generated text against reference text.

MAUVE embeds both sets of texts, quantises the embeddings jointly (PCA, then k-means into
``~N/10`` buckets), and summarises the divergence frontier of the two bucket histograms
:math:`P` (reference) and :math:`Q` (model): with :math:`R_\lambda = \lambda P + (1 -
\lambda) Q`, the curve :math:`\bigl(e^{-c\,\mathrm{KL}(Q \| R_\lambda)}, e^{-c\,\mathrm{KL}(P
\| R_\lambda)}\bigr)`, :math:`c` the scaling factor (5), and MAUVE is the area under it, in
``(0, 1]`` (1: the same distribution). The computation is the authors' package,
``mauve-text`` (with ``faiss-cpu``), fed with features: the paper embeds text with GPT-2
large, which would be a download; jaxdiff embeds it with the frozen all-MiniLM-L6-v2
sentence encoder that ships in a package (:func:`jaxdiff.pretrained.load_sentence_encoder`,
the mean-pooled, L2-normalised embedding). So the numbers compare models within jaxdiff, not
with the papers' MAUVE. MAUVE needs many texts per side (the paper: 5000); with a few
hundred it is noisy.
"""

import numpy as np

FEATURE_TOKENS = 128
"""Each text's first tokens (of the encoder's WordPiece) that its embedding reads."""


def _mauve():
    try:
        import mauve
    except ImportError as e:
        raise ImportError("MAUVE needs the authors' package: `pip install mauve-text "
                          "faiss-cpu`") from e
    return mauve


def text_features(texts, *, max_length: int = FEATURE_TOKENS) -> np.ndarray:
    """The sentence embeddings ``float32 [N, 384]`` of ``texts`` (all-MiniLM-L6-v2, each
    truncated to ``max_length`` tokens)."""
    from jaxdiff.pretrained import load_sentence_encoder

    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("texts must be a non-empty sequence of non-blank strings")
    encoder = load_sentence_encoder()
    return encoder.encode(texts, max_length=max_length, truncate=True).pooled


def mauve_score(reference_features: np.ndarray, model_features: np.ndarray, *,
                seed: int = 25, scaling_factor: float = 5.0) -> float:
    """MAUVE of ``model_features [N, D]`` against ``reference_features [M, D]`` (module
    doc), with the package's defaults (buckets ``N/10``, 90% PCA variance kept)."""
    for name, features in (("reference_features", reference_features),
                           ("model_features", model_features)):
        features = np.asarray(features)
        if features.ndim != 2 or len(features) < 2 or not np.isfinite(features).all():
            raise ValueError(f"{name} must be a finite [N >= 2, D] array, got shape "
                             f"{features.shape}")
    if np.shape(reference_features)[1] != np.shape(model_features)[1]:
        raise ValueError(f"reference_features and model_features must have the same width, "
                         f"got {np.shape(reference_features)[1]} and "
                         f"{np.shape(model_features)[1]}")
    result = _mauve().compute_mauve(p_features=np.asarray(reference_features, np.float32),
                                    q_features=np.asarray(model_features, np.float32),
                                    seed=seed, mauve_scaling_factor=scaling_factor,
                                    verbose=False)
    return float(result.mauve)
