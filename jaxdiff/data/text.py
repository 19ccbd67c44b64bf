"""Character-level text corpora, text8 style: lowercase ``a``-``z`` and single spaces.

Ids are those of the text8 alphabet of :mod:`jaxdiff.chars` (:func:`jaxdiff.chars.encode`):
``a``-``z`` are 0-25, space is 26; :class:`jaxdiff.discrete.CharTokenizer` uses the same ids
and adds ``[MASK]`` (27), which never occurs in a corpus.

=================  ====================================================  ==================
name               source (licence)                                      splits
=================  ====================================================  ==================
``enwiki_gensim``  the gensim wheel's ``gensim/test/test_data/enwiki-    train: first 90%,
                   latest-pages-articles1.xml-p000000010p000030302-      validation: next
                   shortened.bz2`` (CC BY-SA 3.0): 206 English           5%, test: last 5%
                   Wikipedia pages of 2016 (about 6.1 MB of XML),        of the character
                   normalised by :func:`wikifil`                          stream
``text8``          Mahoney's ``text8`` (or ``text8.zip``) read from       train 90M,
                   ``path`` (100,000,000 characters, already clean)      validation 5M,
                                                                         test 5M
=================  ====================================================  ==================

The embedded corpus needs only ``pip install gensim``: its file is located through the
package's installed-file metadata (``importlib.metadata``), gensim itself is never imported.
Normalising it takes a few seconds; the result is cached as ``uint8`` ids under
``$JAXDIFF_CACHE_DIR`` (default ``~/.cache/jaxdiff``) in a file named after the sha256 of
the source and the normaliser version, so it is computed once per source file.

The split is a deterministic cut of the whole character stream, as text8's 90M/5M/5M:
with ``n`` characters and ``k = n // 20``, ``train = [0, n - 2k)``,
``validation = [n - 2k, n - k)``, ``test = [n - k, n)`` (a cut may fall inside a word,
as in text8).

Article groups (the attribute of label-conditioned text runs): the embedded corpus keeps
where each page starts in the stream (:func:`page_starts`); :func:`article_labels` labels
every character with its page's group, page ``i`` (in dump order, empty pages dropped) in
group ``i mod num_groups``, so every split holds every group and the groups have (nearly) as
many pages each. A window's label is its first character's. text8 has no page boundaries
and no groups.

Sequences: :func:`chunk` cuts a split into non-overlapping rows of ``seq_len`` characters
(D3PM's text8 setup, ``seq_len=256``, for evaluation); :func:`random_crops` yields training
batches of random windows, a pure function of ``(seed, step)`` so a run resumes exactly from
its step.

TFDS has no ``text8`` builder (tensorflow-datasets 4.9.10), hence the ``text8`` file reader.
"""

import bz2
import hashlib
import importlib.metadata
import os
import pathlib
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator

import jax
import numpy as np

from jaxdiff import chars
from jaxdiff._validation import check_int
from jaxdiff.data.iterate import check_process_slot

TEXT_CORPUS_NAMES = ("enwiki_gensim", "text8")
TEXT_SPLITS = ("train", "validation", "test", "all")
GENSIM_ENWIKI_FILE = ("enwiki-latest-pages-articles1.xml-p000000010p000030302-"
                      "shortened.bz2")
TEXT8_SPLIT_SIZES = (90_000_000, 5_000_000, 5_000_000)
_NORMALISER_VERSION = 1  # bump when wikifil() changes, to invalidate the caches
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# ----------------------------------------------------------------------------------------
# wikifil: Mahoney's text8 filter
# ----------------------------------------------------------------------------------------

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF_SELF_CLOSING = re.compile(r"<ref[^<>]*/>", re.I)
_REF = re.compile(r"<ref[^<>]*>.*?</ref\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
_BRACKET_URL = re.compile(r"\[(?:https?|ftp):[^\] ]*", re.I)
_BARE_URL = re.compile(r"(?:https?|ftp)://[^\s\]|}<]*", re.I)
_IMAGE_OPTIONS = re.compile(r"\|(?:thumb|thumbnail|left|right|center|upright|frame|"
                            r"frameless|\d+(?:x\d+)?px)(?=[|\]])", re.I)
_IMAGE_LINK = re.compile(r"\[\[(?:image|file):[^\[\]|]*\|", re.I)
_IMAGE_LINK_BARE = re.compile(r"\[\[(?:image|file):[^\[\]]*\]\]", re.I)
_CATEGORY = re.compile(r"\[\[category:([^|\]]*)[^\]]*\]\]", re.I)
_INTERLANGUAGE = re.compile(r"\[\[[a-z\-]*:[^\]]*\]\]")
_LINK_TARGET = re.compile(r"\[\[[^|\]]*\|")
_BRACES = re.compile(r"\{[^{}]*\}")
_ENTITY = re.compile(r"&#?[a-z0-9]+;", re.I)
_NOT_LETTER = re.compile(r"[^a-z]+")


def wikifil(wikitext: str) -> str:
    r"""Mahoney's ``wikifil.pl`` (the text8 filter) on one page of MediaWiki markup.

    Keeps what a browser shows: removes comments, ``<ref>`` references, HTML tags, URLs (the
    visible text of ``[url text]`` stays), image options (captions stay), interlanguage
    links and templates / tables (``{{...}}``, ``{|...|}``, nested ones from the inside
    out); links ``[[target|text]]`` become ``text``, ``[[Category:X|k]]`` becomes ``X``;
    HTML entities become spaces. Then lowercases, spells each digit as a word
    (``"1984"`` -> ``"one nine eight four"``), turns every other character into a space and
    squeezes spaces. The result holds only ``a``-``z`` and single spaces, with no space at
    either end.

    Differences from the Perl original, which filters records ending at
    ``>``: this works on a whole page (so a ``{{template}}`` containing a ``>`` is removed
    too), removes nested templates completely, also drops ``https``/``ftp``/bare URLs,
    ``[[File:...]]`` like ``[[Image:...]]`` and self-closing ``<ref .../>``, and removes
    only well-formed entities ``&name;`` (``&[^;]*;`` can swallow a sentence).

    Args:
      wikitext: the page's markup, XML-unescaped (``<ref>``, not ``&lt;ref&gt;``).
    """
    if not isinstance(wikitext, str):
        raise TypeError(f"wikitext must be a str, got {type(wikitext).__name__}")
    s = _COMMENT.sub("", wikitext)
    s = _REF_SELF_CLOSING.sub("", s)
    s = _REF.sub("", s)
    s = _TAG.sub("", s)
    s = _BRACKET_URL.sub("[", s)
    s = _BARE_URL.sub(" ", s)
    s = _IMAGE_OPTIONS.sub("", s)
    s = _IMAGE_LINK.sub("", s)
    s = _IMAGE_LINK_BARE.sub("", s)
    s = _CATEGORY.sub(r"[[\1]]", s)
    s = _INTERLANGUAGE.sub("", s)
    s = _LINK_TARGET.sub("[[", s)
    while True:  # templates and tables, innermost first
        s, count = _BRACES.subn("", s)
        if not count:
            break
    s = s.replace("[", "").replace("]", "")
    s = _ENTITY.sub(" ", s)
    s = s.lower()
    for digit, word in enumerate(_DIGITS):
        s = s.replace(str(digit), f" {word} ")
    return _NOT_LETTER.sub(" ", s).strip()


def wikipedia_xml_pages(xml_bytes: bytes) -> list[str]:
    """The ``<text>`` of every non-redirect page of a MediaWiki XML dump, in order.

    Like ``wikifil.pl``, which drops a page whose text starts with ``#REDIRECT``.
    """
    root = ET.fromstring(xml_bytes)
    pages = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "text" or not element.text:
            continue
        if element.text.lstrip().lower().startswith("#redirect"):
            continue
        pages.append(element.text)
    if not pages:
        raise ValueError("the XML holds no MediaWiki <text> elements")
    return pages


# ----------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------

def cache_dir() -> pathlib.Path:
    """``$JAXDIFF_CACHE_DIR`` or ``~/.cache/jaxdiff``."""
    return pathlib.Path(os.environ.get("JAXDIFF_CACHE_DIR")
                        or pathlib.Path.home() / ".cache" / "jaxdiff")


def gensim_enwiki_path() -> pathlib.Path:
    """Path of the shortened enwiki dump inside the installed gensim wheel (not imported)."""
    try:
        dist = importlib.metadata.distribution("gensim")
    except importlib.metadata.PackageNotFoundError as e:
        raise ImportError("text corpus 'enwiki_gensim' is read from the 'gensim' package, "
                          "which is not installed; `pip install gensim==4.4.0`") from e
    for file in dist.files or ():
        if file.name == GENSIM_ENWIKI_FILE:
            path = pathlib.Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise FileNotFoundError(f"the installed gensim {dist.version} has no test_data/"
                            f"{GENSIM_ENWIKI_FILE}; `pip install gensim==4.4.0`")


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalised_pages(path: pathlib.Path) -> list[str]:
    """The non-empty :func:`wikifil` text of every page of a (bz2) MediaWiki XML dump."""
    opener = bz2.open if str(path).endswith(".bz2") else open
    with opener(path, "rb") as f:
        pages = wikipedia_xml_pages(f.read())
    return [page for page in map(wikifil, pages) if page]


def normalise_wikipedia_dump(path: pathlib.Path) -> np.ndarray:
    """``uint8`` ids of a (bz2) MediaWiki XML dump: :func:`normalised_pages` joined by one
    space."""
    return chars.encode(" ".join(normalised_pages(path))).astype(np.uint8)


def normalised_page_starts(path: pathlib.Path) -> np.ndarray:
    """``int64`` offset of each page of :func:`normalised_pages` in
    :func:`normalise_wikipedia_dump`'s stream (the space after a page belongs to it)."""
    lengths = np.array([len(page) + 1 for page in normalised_pages(path)], np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]])


def cached_file(file: pathlib.Path, compute, *, load=np.load, save=np.save):
    """``load(file)`` if it exists, else ``compute()`` written there by ``save`` (to a
    temporary name first, then renamed: atomic, so concurrent processes never see a partial
    file)."""
    if file.is_file():
        return load(file)
    value = compute()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.stem}.tmp{os.getpid()}{file.suffix}")
    save(tmp, value)
    os.replace(tmp, file)
    return value


def _cached(path: pathlib.Path, tag: str, compute) -> np.ndarray:
    """``compute(path)``, cached under :func:`cache_dir` by ``tag``, the normaliser version
    and the source's sha256."""
    key = f"{tag}-v{_NORMALISER_VERSION}-{_sha256(path)[:16]}.npy"
    return cached_file(cache_dir() / "text" / key, lambda: compute(path))


def _read_text8(path) -> np.ndarray:
    if path is None:
        raise ValueError("path is required for the 'text8' corpus: the file 'text8' or "
                         "'text8.zip' from http://mattmahoney.net/dc/text8.zip")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            data = z.read("text8")
    else:
        data = path.read_bytes()
    ids = chars.encode(data.decode("ascii")).astype(np.uint8)
    if ids.size != sum(TEXT8_SPLIT_SIZES):
        raise ValueError(f"path {str(path)!r} holds {ids.size} characters; text8 has "
                         f"{sum(TEXT8_SPLIT_SIZES)}")
    return ids


def split_bounds(num_chars: int, split: str) -> tuple[int, int]:
    """``[start, stop)`` of ``split`` in a stream of ``num_chars`` characters (5% / 5% held
    out at the end, see the module doc)."""
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {list(TEXT_SPLITS)}, got {split!r}")
    held = num_chars // 20
    return {"train": (0, num_chars - 2 * held),
            "validation": (num_chars - 2 * held, num_chars - held),
            "test": (num_chars - held, num_chars),
            "all": (0, num_chars)}[split]


def load_text_corpus(name: str = "enwiki_gensim", split: str = "train", *,
                     path: str | os.PathLike | None = None) -> np.ndarray:
    """One split of a character corpus as ``uint8[N]`` ids in ``[0, 27)``.

    Args:
      name: ``"enwiki_gensim"`` (embedded, offline) or ``"text8"`` (Mahoney's file at
        ``path``).
      split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
      path: the ``text8`` / ``text8.zip`` file (``text8`` only).

    Returns:
      The split's character ids, a contiguous piece of the corpus stream.
    """
    if name not in TEXT_CORPUS_NAMES:
        raise ValueError(f"name must be one of {list(TEXT_CORPUS_NAMES)}, got {name!r}")
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {list(TEXT_SPLITS)}, got {split!r}")
    if name == "text8":
        ids = _read_text8(path)
        bounds = np.cumsum((0,) + TEXT8_SPLIT_SIZES)
        start, stop = {"train": bounds[0:2], "validation": bounds[1:3], "test": bounds[2:4],
                       "all": (0, bounds[3])}[split]
        return ids[start:stop]
    if path is not None:
        raise ValueError(f"path is only for the 'text8' corpus, got path={path!r} with "
                         f"name={name!r}")
    ids = _cached(gensim_enwiki_path(), name, normalise_wikipedia_dump)
    start, stop = split_bounds(ids.size, split)
    return ids[start:stop]


def page_starts(name: str = "enwiki_gensim") -> np.ndarray:
    """Where each page starts in corpus ``name``'s whole stream (``int64 [pages]``); only the
    embedded corpus has pages."""
    if name != "enwiki_gensim":
        raise ValueError(f"only the 'enwiki_gensim' corpus has pages (article groups); got "
                         f"name={name!r}")
    return _cached(gensim_enwiki_path(), f"{name}-pages", normalised_page_starts)


def article_labels(name: str = "enwiki_gensim", split: str = "train", *,
                   num_groups: int) -> np.ndarray:
    """The article group of every character of ``split`` (``int32``, aligned with
    :func:`load_text_corpus`): page ``i`` belongs to group ``i mod num_groups`` (module
    doc)."""
    num_groups = check_int("num_groups", num_groups, 2)
    starts = page_starts(name)
    total = int(load_text_corpus(name, "all").size)
    start, stop = split_bounds(total, split)
    page = np.searchsorted(starts, np.arange(start, stop), side="right") - 1
    return (page % num_groups).astype(np.int32)


# ----------------------------------------------------------------------------------------
# Sequences and batches
# ----------------------------------------------------------------------------------------

def _check_ids(ids) -> np.ndarray:
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or not np.issubdtype(ids.dtype,
                                                                             np.integer):
        raise ValueError(f"ids must be a 1-D integer NumPy array, got "
                         f"{type(ids).__name__} shape {getattr(ids, 'shape', None)}")
    return ids


def chunk(ids: np.ndarray, seq_len: int = 256) -> np.ndarray:
    """Non-overlapping rows of ``seq_len`` characters: ``int32[len(ids) // seq_len, seq_len]``
    (the incomplete tail is dropped)."""
    ids = _check_ids(ids)
    seq_len = check_int("seq_len", seq_len)
    rows = ids.size // seq_len
    if rows == 0:
        raise ValueError(f"ids has {ids.size} characters, fewer than seq_len={seq_len}")
    return ids[:rows * seq_len].reshape(rows, seq_len).astype(np.int32)


def crop_starts(step: int, *, num_chars: int, batch_size: int, seq_len: int,
                seed: int) -> np.ndarray:
    """The ``batch_size`` window starts of global batch ``step``: uniform on
    ``[0, num_chars - seq_len]``, drawn from ``np.random.default_rng([seed, step])``."""
    return np.random.default_rng([seed, step]).integers(0, num_chars - seq_len + 1,
                                                        size=batch_size)


def random_crops(ids: np.ndarray, *, batch_size: int, seq_len: int = 256, seed: int,
                 start_step: int = 0, process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[np.ndarray]:
    """Endless batches of random ``seq_len`` windows of ``ids``, this process's rows.

    Batch ``step`` is a pure function of ``(seed, step)`` (:func:`crop_starts`), so
    ``start_step`` resumes a run exactly; every process computes the global batch and keeps
    its contiguous ``batch_size / process_count`` rows, ready for
    :func:`jaxdiff.data.global_batch`.

    Yields:
      ``int32[batch_size / process_count, seq_len]`` host arrays.
    """
    ids = _check_ids(ids)
    batch_size = check_int("batch_size", batch_size)
    seq_len = check_int("seq_len", seq_len)
    seed = check_int("seed", seed, 0)
    step = check_int("start_step", start_step, 0)
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    check_process_slot(process_index, process_count, batch_size)
    if ids.size < seq_len:
        raise ValueError(f"ids has {ids.size} characters, fewer than seq_len={seq_len}")
    local = batch_size // process_count
    offsets = np.arange(seq_len)
    while True:
        starts = crop_starts(step, num_chars=ids.size, batch_size=batch_size,
                             seq_len=seq_len, seed=seed)
        mine = starts[process_index * local:(process_index + 1) * local]
        yield ids[mine[:, None] + offsets[None, :]].astype(np.int32)
        step += 1
