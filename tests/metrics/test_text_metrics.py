"""BLEU against sacreBLEU on many random pairs; self-BLEU and distinct-n on known answers."""

import numpy as np
import pytest
import scipy.stats

from jaxdiff import metrics

sacrebleu = pytest.importorskip(
    "sacrebleu", reason="sacrebleu (the BLEU test oracle) is not installed: pip install sacrebleu"
)
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a  # noqa: E402

_WORDS = (
    "the The cat sat on mat a dog DOG ran 3.5 1,000 a-b 5-6 e-mail don't U.S. x. y, (z) $10 "
    "50% hello! ? a/b &amp; &quot;hi&quot; &lt;tag&gt; <skipped> end-\n line\nbreak [x] {y} "
    "~tilde ^hat _u_ `q` @at #h 2.0. ,lead trail, 7-"
).split(" ")


def _sentence(rng, max_len=22):
    return " ".join(rng.choice(_WORDS, size=rng.integers(0, max_len + 1)))


def _related(rng, sentence):
    words = sentence.split(" ") if sentence else []
    kept = [w for w in words if rng.random() > 0.3]
    if kept and rng.random() < 0.5:
        kept[rng.integers(len(kept))] = str(rng.choice(_WORDS))
    return " ".join(kept + list(rng.choice(_WORDS, size=rng.integers(0, 4))))


def _corpus(rng, n, num_refs):
    hyps = [_sentence(rng) for _ in range(n)]
    refs = [
        [_related(rng, h) if rng.random() < 0.8 else _sentence(rng) for _ in range(num_refs)]
        for h in hyps
    ]
    return hyps, refs


def _transpose(refs):
    return [list(stream) for stream in zip(*refs, strict=True)]


def test_tokenize_13a_matches_sacrebleu():
    rng = np.random.default_rng(0)
    tok = Tokenizer13a()
    for _ in range(500):
        line = _sentence(rng, max_len=30)
        assert metrics.tokenize_13a(line) == tok(line).split(), line


@pytest.mark.parametrize("num_refs", [1, 3])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"smooth_method": "none"},
        {"smooth_method": "floor"},
        {"smooth_method": "floor", "smooth_value": 0.3},
        {"smooth_method": "add-k"},
        {"lowercase": True},
        {"tokenize": "none"},
        {"use_effective_order": True},
    ],
)
def test_corpus_bleu_matches_sacrebleu(num_refs, options):
    rng = np.random.default_rng(num_refs)
    ours = {
        "smooth": options.get("smooth_method", "exp"),
        "smooth_value": options.get("smooth_value"),
        "lowercase": options.get("lowercase", False),
        "tokenize": options.get("tokenize", "13a"),
        "effective_order": options.get("use_effective_order", False),
    }
    for trial in range(12):
        n = [1, 2, 5, 40][trial % 4]
        hyps, refs = _corpus(rng, n, num_refs)
        want = sacrebleu.corpus_bleu(hyps, _transpose(refs), **options).score
        got = metrics.corpus_bleu(hyps, refs, **ours)
        assert got == pytest.approx(want, abs=1e-9), (hyps, refs)


def test_corpus_bleu_variable_reference_counts():
    rng = np.random.default_rng(7)
    hyps, refs = _corpus(rng, 30, 3)
    refs = [r[: 1 + i % 3] for i, r in enumerate(refs)]
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(3)]
    want = sacrebleu.corpus_bleu(hyps, streams).score
    assert metrics.corpus_bleu(hyps, refs) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"smooth_method": "floor"},
        {"smooth_method": "add-k"},
        {"use_effective_order": False},
        {"lowercase": True},
    ],
)
def test_sentence_bleu_matches_sacrebleu_on_many_random_pairs(options):
    rng = np.random.default_rng(11)
    ours = {
        "smooth": options.get("smooth_method", "exp"),
        "lowercase": options.get("lowercase", False),
        "effective_order": options.get("use_effective_order", True),
    }
    for _ in range(300):
        hyp = _sentence(rng)
        refs = [_related(rng, hyp) for _ in range(rng.integers(1, 4))]
        want = sacrebleu.sentence_bleu(hyp, refs, **options).score
        got = metrics.sentence_bleu(hyp, refs, **ours)
        assert got == pytest.approx(want, abs=1e-9), (hyp, refs)


def test_token_id_sequences_match_sacrebleu_without_tokenizer():
    rng = np.random.default_rng(3)
    hyps = rng.integers(0, 12, size=(40, 15))  # a batch of token ids, e.g. model samples
    refs = [[np.concatenate([h[: rng.integers(0, 15)], rng.integers(0, 12, size=4)])] for h in hyps]
    as_text = lambda ids: " ".join(map(str, ids))  # noqa: E731
    want = sacrebleu.corpus_bleu(
        [as_text(h) for h in hyps], [[as_text(r[0]) for r in refs]], tokenize="none"
    ).score
    assert metrics.corpus_bleu(hyps, refs) == pytest.approx(want, abs=1e-9)
    want = sacrebleu.sentence_bleu(as_text(hyps[0]), [as_text(refs[0][0])], tokenize="none")
    assert metrics.sentence_bleu(list(hyps[0]), refs[0]) == pytest.approx(want.score, abs=1e-9)


def test_self_bleu_known_answers():
    # "a b c d" vs "a b c e": precisions 3/4, 2/3, 1/2 and (exp smoothing) 1/(2*1); BP = 1.
    expected = 100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25
    assert metrics.self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected, abs=1e-9)
    assert metrics.self_bleu(["x y z w"] * 4) == pytest.approx(100.0)
    assert metrics.self_bleu(["a b c", "d e f", "g h i"], smooth="none") == 0.0


def test_self_bleu_equals_leave_one_out_sacrebleu():
    rng = np.random.default_rng(5)
    for _ in range(5):
        base = _sentence(rng, max_len=15)
        samples = [
            _related(rng, base) if rng.random() < 0.7 else _sentence(rng, 15) for _ in range(12)
        ]
        samples += samples[:2]  # duplicates: an n-gram's top count held by two samples
        want = np.mean(
            [
                sacrebleu.sentence_bleu(s, samples[:i] + samples[i + 1 :]).score
                for i, s in enumerate(samples)
            ]
        )
        assert metrics.self_bleu(samples) == pytest.approx(want, abs=1e-9), samples


def test_distinct_n_known_answers():
    samples = ["a b a b", "a b c"]
    assert metrics.distinct_n(samples, 1) == pytest.approx(3 / 7)  # {a, b, c} of 7 tokens
    assert metrics.distinct_n(samples, 2) == pytest.approx(3 / 5)  # {ab, ba, bc} of 5 bigrams
    assert metrics.distinct_n(samples, 3) == pytest.approx(3 / 3)  # aba, bab, abc
    assert metrics.distinct_n(np.array([[1, 2, 1, 2], [1, 2, 3, 3]]), 2) == pytest.approx(4 / 6)
    assert metrics.distinct_n(["same words"] * 5, 2) == pytest.approx(1 / 5)


def test_bad_text_arguments():
    with pytest.raises(ValueError, match="references must hold one list per hypothesis"):
        metrics.corpus_bleu(["a b"], [["a b"], ["c"]])
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty"):
        metrics.corpus_bleu(["a b"], ["a b"])
    with pytest.raises(ValueError, match="smooth must be one of"):
        metrics.sentence_bleu("a", ["a"], smooth="bogus")
    with pytest.raises(ValueError, match="tokenize must be"):
        metrics.sentence_bleu("a", ["a"], tokenize="intl")
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.self_bleu(["only one"])
    with pytest.raises(ValueError, match="no 3-grams"):
        metrics.distinct_n(["a b", "c"], 3)
    with pytest.raises(ValueError, match=r"samples\[1\] must be a string or a sequence"):
        metrics.distinct_n(["a b", 3], 1)


def test_sample_entropy_equals_scipy_per_sample_and_averages():
    rows = np.array([[0, 0, 1, 2, 2, 2], [5, 5, 5, 5, 5, 5], [1, 2, 3, 4, 5, 6]])
    expected = np.mean([scipy.stats.entropy(np.bincount(row)) for row in rows])
    assert metrics.sample_entropy(rows) == pytest.approx(expected, abs=1e-12)
    assert metrics.sample_entropy(["the cat the dog"]) == pytest.approx(
        float(scipy.stats.entropy([2, 1, 1])))
    with pytest.raises(ValueError, match="non-empty samples"):
        metrics.sample_entropy([[]])
