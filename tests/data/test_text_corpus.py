"""The character corpora: wikifil normalisation, the embedded enwiki corpus, chunks, crops."""

import zipfile

import numpy as np
import pytest

from jaxdiff import chars
from jaxdiff.data import text as text_data
from jaxdiff.data.text import (
    chunk,
    crop_starts,
    load_text_corpus,
    random_crops,
    wikifil,
    wikipedia_xml_pages,
)
from jaxdiff.discrete import CharTokenizer

# ---------------------------------------------------------------------------------------
# wikifil on hand-made markup


@pytest.mark.parametrize("markup, expected", [
    ("'''Anarchism''' is a [[political philosophy|philosophy]] that",
     "anarchism is a philosophy that"),
    ("born<ref name=a>Smith, p. 3</ref> here<ref name=b /> now", "born here now"),
    ("{{Infobox|name={{nowrap|X}}|born=1}}Text after", "text after"),
    ("{| class=\"wikitable\"\n|-\n| a || b\n|}\nAfter the table", "after the table"),
    ("In 1984, it cost $5.", "in one nine eight four it cost five"),
    ("[http://example.com/x Example site] and https://foo.org/bar end",
     "example site and end"),
    ("[[File:Cat.jpg|thumb|left|250px|A [[cat]] sitting]] Text", "a cat sitting text"),
    ("[[Category:Political ideologies|Anarchism]] [[de:Anarchismus]] x",
     "political ideologies x"),
    ("a<br/>b &nbsp;c<!-- hidden\ncomment --> d <span>E</span>", "ab c d e"),
    ("Caf\u00e9 na\u00efve -- \u201cquoted\u201d   (x)", "caf na ve quoted x"),
])
def test_wikifil_examples(markup, expected):
    assert wikifil(markup) == expected


def test_wikifil_rejects_bytes():
    with pytest.raises(TypeError, match="wikitext"):
        wikifil(b"abc")


def test_wikipedia_xml_pages_drops_redirects():
    xml = (b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
           b'<page><revision><text xml:space="preserve">#REDIRECT [[B]]</text></revision></page>'
           b'<page><revision><text>One &lt;ref&gt;r&lt;/ref&gt;two</text></revision></page>'
           b'</mediawiki>')
    pages = wikipedia_xml_pages(xml)
    assert pages == ["One <ref>r</ref>two"]
    assert wikifil(pages[0]) == "one two"


def test_char_codec_roundtrip_and_errors():
    ids = chars.encode("az b")
    np.testing.assert_array_equal(ids, [0, 25, 26, 1])
    assert chars.decode(ids) == "az b"
    with pytest.raises(ValueError, match="a-z and space, found 'B' at position 1"):
        chars.encode("aB")
    with pytest.raises(ValueError, match="ids"):
        chars.decode(np.array([27]))


def test_corpus_ids_are_the_tokenizer_ids():
    # One codec: the corpus ids are CharTokenizer's (a-z, space), which adds [MASK] = 27.
    text = "the quick brown fox jumps over the lazy dog"
    tokenizer = CharTokenizer()
    np.testing.assert_array_equal(tokenizer.encode(text), chars.encode(text))
    assert tokenizer.mask_id == 27 and tokenizer.vocab_size == 28
    assert tokenizer.decode(np.arange(28)) == chars.TEXT8_ALPHABET + "[MASK]"


# ---------------------------------------------------------------------------------------
# The embedded corpus

ENWIKI_SIZES = {"train": 2_739_619, "validation": 152_200, "test": 152_200, "all": 3_044_019}


@pytest.fixture(scope="module")
def enwiki(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAXDIFF_CACHE_DIR", str(cache))
        splits = {s: load_text_corpus("enwiki_gensim", s) for s in ENWIKI_SIZES}
        again = load_text_corpus("enwiki_gensim", "all")  # from the cache
    return splits, again, cache


def test_enwiki_sizes_and_splits(enwiki):
    splits, _, _ = enwiki
    assert {s: ids.size for s, ids in splits.items()} == ENWIKI_SIZES
    # Disjoint, contiguous, in order: train + validation + test is the whole stream.
    np.testing.assert_array_equal(
        np.concatenate([splits["train"], splits["validation"], splits["test"]]), splits["all"])
    assert splits["validation"].size == splits["test"].size == splits["all"].size // 20


def test_enwiki_alphabet_and_spaces(enwiki):
    ids = enwiki[0]["all"]
    assert ids.dtype == np.uint8
    assert ids.max() == 26 and ids.min() == 0
    counts = np.bincount(ids, minlength=27)
    assert counts.size == 27 and np.all(counts > 0)  # all 27 symbols, nothing else
    space = ids == 26
    assert not np.any(space[1:] & space[:-1])  # no double spaces
    assert not space[0] and not space[-1]
    text = chars.decode(ids[:40])
    assert text == "anarchism is a political philosophy that"
    # Spaces are text8-like (about 17% of text8's characters are spaces).
    assert 0.15 < counts[26] / ids.size < 0.19


def test_enwiki_cache_is_deterministic(enwiki):
    splits, again, cache = enwiki
    np.testing.assert_array_equal(again, splits["all"])
    files = sorted(p.name for p in (cache / "text").iterdir())
    assert files == ["enwiki_gensim-v1-a53f4648dec40467.npy"]  # keyed by the source sha256


def test_load_text_corpus_errors():
    with pytest.raises(ValueError, match="name"):
        load_text_corpus("tfds:text8", "train")
    with pytest.raises(ValueError, match="split"):
        load_text_corpus("enwiki_gensim", "valid")
    with pytest.raises(ValueError, match="path"):
        load_text_corpus("enwiki_gensim", "train", path="/tmp/x")
    with pytest.raises(ValueError, match="path is required"):
        load_text_corpus("text8", "train")


def test_text8_file_reader(tmp_path, monkeypatch):
    # A synthetic "text8": the real split sizes 90M / 5M / 5M, read from a zip.
    monkeypatch.setattr(text_data, "TEXT8_SPLIT_SIZES", (18, 1, 1))
    stream = "abc defg hij klmnopq"
    archive = tmp_path / "text8.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("text8", stream)
    got = {s: chars.decode(load_text_corpus("text8", s, path=archive))
           for s in ("train", "validation", "test", "all")}
    assert got == {"train": stream[:18], "validation": "p", "test": "q", "all": stream}
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ValueError, match="holds 3 characters"):
        load_text_corpus("text8", "train", path=tmp_path / "short")


# ---------------------------------------------------------------------------------------
# Sequences and batches


def test_chunk_shapes_and_values():
    ids = (np.arange(1000) % 27).astype(np.uint8)
    rows = chunk(ids, seq_len=256)
    assert rows.shape == (3, 256) and rows.dtype == np.int32
    np.testing.assert_array_equal(rows[1], ids[256:512])
    with pytest.raises(ValueError, match="seq_len"):
        chunk(ids, seq_len=0)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        chunk(ids[:10], seq_len=256)
    with pytest.raises(ValueError, match="ids"):
        chunk(ids.reshape(10, 100))


def test_random_crops_deterministic_resumable_and_sharded():
    ids = (np.arange(5000) * 7 % 27).astype(np.uint8)
    stream = random_crops(ids, batch_size=8, seq_len=16, seed=3, process_index=0,
                          process_count=1)
    first = [next(stream) for _ in range(4)]
    assert all(b.shape == (8, 16) and b.dtype == np.int32 for b in first)
    # Each row is the window at the step's crop starts.
    starts = crop_starts(2, num_chars=ids.size, batch_size=8, seq_len=16, seed=3)
    np.testing.assert_array_equal(first[2], np.stack([ids[s:s + 16] for s in starts]))
    # Resume from step 2.
    resumed = random_crops(ids, batch_size=8, seq_len=16, seed=3, start_step=2,
                           process_index=0, process_count=1)
    np.testing.assert_array_equal(next(resumed), first[2])
    # Two processes hold the halves of the global batch.
    halves = [next(random_crops(ids, batch_size=8, seq_len=16, seed=3, process_index=p,
                                process_count=2)) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), first[0])
    # Another seed, other windows; starts cover the whole valid range.
    other = next(random_crops(ids, batch_size=8, seq_len=16, seed=4, process_index=0,
                              process_count=1))
    assert not np.array_equal(other, first[0])
    many = crop_starts(0, num_chars=100, batch_size=20000, seq_len=16, seed=0)
    assert many.min() == 0 and many.max() == 84


def test_random_crops_errors():
    ids = np.zeros(100, np.uint8)
    with pytest.raises(ValueError, match="batch_size"):
        next(random_crops(ids, batch_size=0, seed=0))
    with pytest.raises(ValueError, match="divisible by process_count"):
        next(random_crops(ids, batch_size=3, seq_len=4, seed=0, process_index=0,
                          process_count=2))
    with pytest.raises(ValueError, match="fewer than seq_len"):
        next(random_crops(ids, batch_size=2, seq_len=256, seed=0))
