r"""Text metrics for samples: BLEU (corpus and sentence), self-BLEU, distinct-n, and the
entropy of a sample's tokens.

BLEU (Papineni et al., 2002) is implemented here in plain Python and reproduces sacreBLEU's
numbers (Post, 2018; its defaults: the ``13a`` tokenizer, ``exp`` smoothing, effective order at
sentence level) -- sacreBLEU is used only as the test oracle. Scores are on sacreBLEU's 0-100
scale:

.. math::
    \mathrm{BLEU} = \mathrm{BP} \cdot \exp\Bigl(\frac{1}{N} \sum_{n=1}^{N} \log p_n\Bigr),
    \qquad \mathrm{BP} = \min\bigl(1, e^{1 - r / c}\bigr),

with :math:`p_n` the clipped n-gram precisions (counts clipped by the maximum count in any
one reference), :math:`c` the hypothesis length and :math:`r` the closest reference length
(ties to the shorter), both summed over the corpus.

A sample is either a string, tokenized by ``tokenize`` (``"13a"``, mteval-v13a's rules as in
sacreBLEU; or ``"none"``, whitespace split), or an already-tokenized sequence (a list of
strings or token ids, or a 1-D integer array; a 2-D array is a batch of such rows), used as it
is -- the natural input for a diffusion model's token ids.

References are given per hypothesis: ``references[i]`` is the list of references of
``hypotheses[i]`` (sacreBLEU takes the transpose, one stream per reference set).
"""

import bisect
import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

Sample = str | Sequence[Hashable] | np.ndarray

SMOOTH_METHODS = ("exp", "floor", "add-k", "none")
_SMOOTH_DEFAULTS = {"floor": 0.1, "add-k": 1.0}

# mteval-v13a: ASCII punctuation split off everywhere, except the apostrophe, comma, period and
# hyphen, which have the contextual rules below.
_13A_RULES = (
    (re.compile("([" + re.escape('{|}~[\\]^_`!"#$%&()*+:;<=>?@/ ') + "])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),  # period/comma not after a digit
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),  # period/comma not before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # hyphen after a digit
)
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize_13a(line: str) -> list[str]:
    """Tokenizes a line like mteval-v13a (WMT's standard, sacreBLEU's default)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in _ENTITIES:
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _tokens(sample: Sample, tokenize: str, lowercase: bool, name: str) -> tuple:
    if isinstance(sample, str):
        if lowercase:
            sample = sample.lower()
        if tokenize == "13a":
            return tuple(tokenize_13a(sample.rstrip()))
        if tokenize == "none":
            return tuple(sample.split())
        raise ValueError(f"tokenize must be '13a' or 'none', got {tokenize!r}")
    if isinstance(sample, np.ndarray):
        if sample.ndim != 1:
            raise ValueError(f"{name} must be a string or a 1-D token sequence, got {sample.shape}")
        return tuple(sample.tolist())
    if isinstance(sample, Sequence):
        return tuple(t.item() if isinstance(t, np.generic) else t for t in sample)
    raise ValueError(
        f"{name} must be a string or a sequence of tokens, got {type(sample).__name__}"
    )


def _samples(samples, tokenize: str, lowercase: bool, name: str) -> list[tuple]:
    if isinstance(samples, np.ndarray) and samples.ndim == 2:
        samples = list(samples)
    if isinstance(samples, str) or not isinstance(samples, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of samples, got {type(samples).__name__}")
    return [_tokens(s, tokenize, lowercase, f"{name}[{i}]") for i, s in enumerate(samples)]


def _ngrams(tokens: tuple, max_order: int) -> Counter:
    return Counter(
        tokens[i : i + n] for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1)
    )


def _closest(hyp_len: int, ref_lens: Sequence[int]) -> int:
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


class BleuStats(NamedTuple):
    """BLEU's sufficient statistics; corpus statistics are the sums of sentence statistics.

    Attributes:
      hyp_len: hypothesis length(s) in tokens.
      ref_len: closest reference length(s).
      matches: ``[max_order]`` clipped n-gram matches per order.
      totals: ``[max_order]`` hypothesis n-grams per order.
    """

    hyp_len: int
    ref_len: int
    matches: np.ndarray
    totals: np.ndarray

    def __add__(self, other: "BleuStats") -> "BleuStats":
        return BleuStats(
            self.hyp_len + other.hyp_len,
            self.ref_len + other.ref_len,
            self.matches + other.matches,
            self.totals + other.totals,
        )


def _stats(hyp: tuple, ref_counts: Counter, ref_len: int, max_order: int) -> BleuStats:
    matches = np.zeros(max_order, np.int64)
    totals = np.zeros(max_order, np.int64)
    for gram, count in _ngrams(hyp, max_order).items():
        totals[len(gram) - 1] += count
        matches[len(gram) - 1] += min(count, ref_counts.get(gram, 0))
    return BleuStats(len(hyp), ref_len, matches, totals)


def bleu_stats(hypothesis: tuple, references: Sequence[tuple], *, max_order: int = 4) -> BleuStats:
    """Sentence statistics of a tokenized hypothesis against tokenized references."""
    ref_counts: Counter = Counter()
    for ref in references:
        ref_counts |= _ngrams(ref, max_order)  # | keeps the max count per n-gram
    return _stats(
        hypothesis, ref_counts, _closest(len(hypothesis), [len(r) for r in references]), max_order
    )


def bleu_from_stats(
    stats: BleuStats,
    *,
    smooth: str = "exp",
    smooth_value: float | None = None,
    effective_order: bool = False,
) -> float:
    """BLEU (0-100) from its statistics, with sacreBLEU's smoothing methods.

    ``exp`` (mteval-v13a / NIST): the k-th order with no match gets precision
    :math:`1 / (2^k \\cdot \\text{total})`; ``floor``: zero matches count as ``smooth_value``
    (0.1); ``add-k``: orders n > 1 add ``smooth_value`` (1) to matches and totals; ``none``.
    ``effective_order`` averages only over the orders the hypothesis has n-grams of (for
    sentences shorter than ``max_order``).
    """
    if smooth not in SMOOTH_METHODS:
        raise ValueError(f"smooth must be one of {SMOOTH_METHODS}, got {smooth!r}")
    k = _SMOOTH_DEFAULTS.get(smooth) if smooth_value is None else smooth_value
    hyp_len, ref_len = stats.hyp_len, stats.ref_len
    if hyp_len >= ref_len:
        brevity = 1.0
    else:
        brevity = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    if not np.any(stats.matches):
        return 0.0
    max_order = len(stats.matches)
    log_precisions = []
    order = max_order
    halvings = 0
    for n in range(1, max_order + 1):
        match, total = float(stats.matches[n - 1]), float(stats.totals[n - 1])
        if smooth == "add-k" and n > 1:
            match, total = match + k, total + k
        if total == 0:
            break
        if effective_order:
            order = n
        if match > 0:
            precision = 100.0 * match / total
        elif smooth == "exp":
            halvings += 1
            precision = 100.0 / (2.0**halvings * total)
        elif smooth == "floor":
            precision = 100.0 * k / total
        else:
            return 0.0  # log 0: the geometric mean is 0
        log_precisions.append(math.log(precision))
    if len(log_precisions) < order:
        return 0.0  # an order with no n-grams at all counts as precision 0
    return brevity * math.exp(sum(log_precisions[:order]) / order)


def _check_order(max_order: int) -> None:
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive int, got {max_order!r}")


def corpus_bleu(
    hypotheses: Sequence[Sample],
    references: Sequence[Sequence[Sample]],
    *,
    max_order: int = 4,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = False,
) -> float:
    """Corpus BLEU (0-100), equal to ``sacrebleu.corpus_bleu`` with the same options.

    Args:
      hypotheses: ``N`` samples.
      references: ``N`` lists of references, ``references[i]`` for ``hypotheses[i]`` (at least
        one each; their number may vary).
    """
    _check_order(max_order)
    hyps = _samples(hypotheses, tokenize, lowercase, "hypotheses")
    if len(references) != len(hyps):
        raise ValueError(
            f"references must hold one list per hypothesis: {len(references)} lists for "
            f"{len(hyps)} hypotheses"
        )
    if not hyps:
        raise ValueError("hypotheses must not be empty")
    total = BleuStats(0, 0, np.zeros(max_order, np.int64), np.zeros(max_order, np.int64))
    for i, (hyp, refs) in enumerate(zip(hyps, references, strict=True)):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"references[{i}] must be a non-empty list of references")
        refs = _samples(refs, tokenize, lowercase, f"references[{i}]")
        total = total + bleu_stats(hyp, refs, max_order=max_order)
    return bleu_from_stats(
        total, smooth=smooth, smooth_value=smooth_value, effective_order=effective_order
    )


def sentence_bleu(
    hypothesis: Sample,
    references: Sequence[Sample],
    *,
    max_order: int = 4,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = True,
) -> float:
    """Sentence BLEU (0-100), equal to ``sacrebleu.sentence_bleu`` with the same options."""
    _check_order(max_order)
    hyp = _tokens(hypothesis, tokenize, lowercase, "hypothesis")
    if isinstance(references, str) or len(references) == 0:
        raise ValueError("references must be a non-empty list of references")
    refs = _samples(references, tokenize, lowercase, "references")
    return bleu_from_stats(
        bleu_stats(hyp, refs, max_order=max_order),
        smooth=smooth,
        smooth_value=smooth_value,
        effective_order=effective_order,
    )


def self_bleu(
    samples: Sequence[Sample],
    *,
    max_order: int = 4,
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = True,
) -> float:
    """Self-BLEU (Zhu et al., 2018, Texygen): the mean sentence BLEU of each sample against all
    the others as references. Higher means less diverse; 0-100.

    Exact and ``O(total n-grams)``, not ``O(N^2)``: for each n-gram the two largest counts over
    the samples (and which sample holds the largest) give the maximum over "all others" of
    every sample, and the sorted lengths give each sample's closest other length.
    """
    _check_order(max_order)
    toks = _samples(samples, tokenize, lowercase, "samples")
    if len(toks) < 2:
        raise ValueError(f"samples must hold at least 2 samples, got {len(toks)}")
    counts = [_ngrams(t, max_order) for t in toks]
    top1: dict[tuple, tuple[int, int]] = {}  # n-gram -> (largest count, its sample)
    top2: dict[tuple, int] = {}  # n-gram -> second largest count
    for i, c in enumerate(counts):
        for gram, count in c.items():
            best = top1.get(gram)
            if best is None:
                top1[gram] = (count, i)
            elif count > best[0]:
                top2[gram] = best[0]
                top1[gram] = (count, i)
            elif count > top2.get(gram, 0):
                top2[gram] = count
    length_counts = Counter(len(t) for t in toks)
    lengths = sorted(length_counts)
    scores = []
    for i, (hyp, c) in enumerate(zip(toks, counts, strict=True)):
        others_max = Counter(
            {gram: (top2.get(gram, 0) if top1[gram][1] == i else top1[gram][0]) for gram in c}
        )
        own = len(hyp)
        if length_counts[own] > 1:
            ref_len = own
        else:
            j = bisect.bisect_left(lengths, own)
            candidates = lengths[max(j - 1, 0) : j] + lengths[j + 1 : j + 2]
            ref_len = _closest(own, candidates)
        stats = _stats(hyp, others_max, ref_len, max_order)
        scores.append(
            bleu_from_stats(
                stats, smooth=smooth, smooth_value=smooth_value, effective_order=effective_order
            )
        )
    return float(np.mean(scores))


def distinct_n(
    samples: Sequence[Sample], n: int, *, tokenize: str = "13a", lowercase: bool = False
) -> float:
    """Distinct-n: distinct n-grams over all samples divided by the total number of n-grams
    (Li et al., 2016, divide by the number of tokens instead; the two agree for n = 1)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    toks = _samples(samples, tokenize, lowercase, "samples")
    grams = [t[i : i + n] for t in toks for i in range(len(t) - n + 1)]
    if not grams:
        raise ValueError(f"samples have no {n}-grams (every sample is shorter than {n} tokens)")
    return len(set(grams)) / len(grams)


def sample_entropy(samples: Sequence[Sample], *, tokenize: str = "none",
                   lowercase: bool = False) -> float:
    r"""The mean over samples of the entropy of each sample's token frequencies, in nats:

    .. math:: \frac1B \sum_b -\sum_v \hat p_{b,v} \log \hat p_{b,v},\qquad
        \hat p_{b,v} = \frac{\#\{i : x_{b,i} = v\}}{L_b}

    (BD3-LM's and ReMDM's sample entropy, beside generative perplexity, which alone rewards
    repetitive low-entropy text). A string sample is split by ``tokenize`` (default
    ``"none"``: whitespace words; pass its characters as a list for per-character entropy);
    token ids are used as they are.
    """
    toks = _samples(samples, tokenize, lowercase, "samples")
    if not toks or any(len(t) == 0 for t in toks):
        raise ValueError("samples must be a non-empty list of non-empty samples")
    entropies = []
    for tokens in toks:
        counts = np.asarray(list(Counter(tokens).values()), np.float64)
        p = counts / counts.sum()
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))
