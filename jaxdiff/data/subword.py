r"""Subword tokens for the text processes: a BPE tokenizer trained offline on a character
corpus with the ``tokenizers`` library, or a ``tokenizer.json`` the user provides (GPT-2's,
BERT's), and a corpus split as a stream of their token ids.

**The trained BPE** (:func:`train_bpe`, :func:`corpus_bpe`): byte-pair encoding (Sennrich et
al. 2016) learnt on the training split of a character corpus, ``vocab_size`` tokens in all
(the 27 characters, with space written ``▁`` as in SentencePiece, then the merges). Spaces
are kept as the ``▁`` that starts each word after the first (the ``Metaspace`` pre-tokenizer
without a prepended ``▁``), so decoding is exact: ``decode(encode(text)) == text`` for every
text over the alphabet, pieces included. Training is deterministic; the tokenizer is cached
as JSON under :func:`jaxdiff.data.text.cache_dir` by corpus, vocabulary size, this module's
recipe version and the ``tokenizers`` version, and a corpus split's token ids beside it.

**[MASK]**: the tokenizer's own ``[MASK]`` token when it has one (BERT), otherwise a new id
after its vocabulary (GPT-2; MDLM and BD3-LM add it the same way); ``vocab_size`` counts it.
The literal ``[MASK]`` in a string encodes to it.

**A pre-tokenised corpus** (``data.name = "tokens"``, the papers' LM1B / OpenWebText at full
scale): a directory with ``train.npy`` and ``validation.npy`` (and ``test.npy``), 1-D
integer token ids of the documents concatenated (separators included), written by
``experiments/tokenize_corpus.py`` with the paper's tokenizer; read memory-mapped
(:func:`load_token_split`), so it may exceed memory; :func:`write_token_corpus` writes one from
text files. Random windows of the stream are the
papers' "wrapped" sequences. It has no characters: its held-out metric is the perplexity
per token.

**Bits per character**: a per-token NLL converts with the characters per token measured on
the split it is evaluated on (:func:`characters_per_token`), so a subword model's bound is
comparable with a character model's.
"""

import dataclasses
import functools
import hashlib
import itertools
import os
import pathlib

import numpy as np

from jaxdiff import chars
from jaxdiff._validation import check_int
from jaxdiff.data.text import cached_file

MASK_TOKEN = "[MASK]"
SPACE = "\u2581"   # SentencePiece's word-boundary mark, standing for a space
RECIPE_VERSION = 1  # bump when train_bpe changes, to invalidate the caches


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:   # a declared dependency; an explicit message if it is missing
        raise ImportError("subword tokens need the 'tokenizers' package: "
                          "`pip install tokenizers`") from e
    return tokenizers


@dataclasses.dataclass(frozen=True)
class SubwordTokenizer:
    """A ``tokenizers`` tokenizer with a ``[MASK]`` id (module doc); a hashable value.

    Attributes:
      json: the tokenizer's JSON serialisation (``Tokenizer.to_str()``).
      name: where it came from (``"bpe-512 on enwiki_gensim"``, a file path), for messages.
      lossless: ``decode(encode(text)) == text`` holds for every text it can encode (the
        trained BPE); ``encode`` then rejects a text that would not come back, naming its
        characters. A provided tokenizer (BERT lowercases) is not checked.
    """

    json: str
    name: str
    lossless: bool = False

    @functools.cached_property
    def tokenizer(self):
        return _tokenizers().Tokenizer.from_str(self.json)

    @property
    def data_vocab_size(self) -> int:
        """The tokenizer's own vocabulary size (the ids text can encode to)."""
        return self.tokenizer.get_vocab_size()

    @property
    def mask_id(self) -> int:
        """``[MASK]``: the tokenizer's own token, or the id after its vocabulary."""
        own = self.tokenizer.token_to_id(MASK_TOKEN)
        return self.data_vocab_size if own is None else own

    @property
    def vocab_size(self) -> int:
        """``V``: the model's vocabulary, ``[MASK]`` included."""
        return self.data_vocab_size + (self.tokenizer.token_to_id(MASK_TOKEN) is None)

    def _encode_piece(self, piece: str) -> list[int]:
        ids = self.tokenizer.encode(piece, add_special_tokens=False).ids
        if self.lossless and self.tokenizer.decode(ids, skip_special_tokens=False) != piece:
            unknown = sorted(set(piece) - set(self.tokenizer.decode(ids)))
            raise ValueError(f"text has characters the tokenizer {self.name!r} cannot encode: "
                             f"{unknown} (in {piece[:40]!r})")
        return ids

    def encode(self, text: str) -> np.ndarray:
        """``int32 [N]`` ids of ``text``; the literal ``[MASK]`` is :attr:`mask_id`."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids: list[int] = []
        for i, piece in enumerate(text.split(MASK_TOKEN)):
            if i:
                ids.append(self.mask_id)
            if piece:
                ids.extend(self._encode_piece(piece))
        return np.asarray(ids, np.int32)

    def decode(self, ids) -> str:
        """The text of ``ids [N]``, :attr:`mask_id` written ``[MASK]``."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape} "
                             f"dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got values in "
                             f"[{ids.min()}, {ids.max()}]")
        pieces, start = [], 0
        for stop in [*np.flatnonzero(ids == self.mask_id), ids.size]:
            pieces.append(self.tokenizer.decode(ids[start:stop].tolist(),
                                                skip_special_tokens=False))
            start = stop + 1
        return MASK_TOKEN.join(pieces)


def train_bpe(text: str, vocab_size: int, *, alphabet: str = chars.TEXT8_ALPHABET,
              name: str = "bpe") -> SubwordTokenizer:
    """A BPE tokenizer of ``vocab_size`` tokens trained on ``text`` (module doc); ``text``
    holds only ``alphabet``'s characters, words separated by single spaces."""
    tk = _tokenizers()
    vocab_size = check_int("vocab_size", vocab_size, len(alphabet))
    marks = alphabet.replace(" ", SPACE)
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Metaspace(replacement=SPACE,
                                                          prepend_scheme="never")
    tokenizer.decoder = tk.decoders.Metaspace(replacement=SPACE, prepend_scheme="never")
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=list(marks),
                                     limit_alphabet=len(marks), special_tokens=[],
                                     show_progress=False)
    words = text.split(" ")
    batches = (" ".join(words[i:i + 4096]) for i in range(0, len(words), 4096))
    tokenizer.train_from_iterator(batches, trainer=trainer, length=len(words))
    return SubwordTokenizer(json=tokenizer.to_str(), name=name, lossless=True)


def load_tokenizer_file(path: str | os.PathLike) -> SubwordTokenizer:
    """A ``tokenizer.json`` (the ``tokenizers`` format, e.g. from a Hugging Face model
    snapshot: ``gpt2/tokenizer.json``, ``bert-base-uncased/tokenizer.json``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist (a "
                                f"tokenizer.json, e.g. of gpt2 or bert-base-uncased)")
    return SubwordTokenizer(json=path.read_text(), name=str(path))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def corpus_bpe(train_ids: np.ndarray, vocab_size: int, *, corpus: str,
               cache: pathlib.Path) -> SubwordTokenizer:
    """:func:`train_bpe` on a corpus's training split (character ids ``train_ids``), cached
    in ``cache`` by the split's content, ``vocab_size``, :data:`RECIPE_VERSION` and the
    ``tokenizers`` version."""
    name = f"bpe-{vocab_size} on {corpus}"
    file = cache / (f"bpe-{corpus}-{vocab_size}-r{RECIPE_VERSION}-"
                    f"t{_tokenizers().__version__}-{_sha(np.ascontiguousarray(train_ids))}.json")
    text = cached_file(file,
                       lambda: train_bpe(chars.decode(train_ids), vocab_size, name=name).json,
                       load=pathlib.Path.read_text, save=pathlib.Path.write_text)
    return SubwordTokenizer(json=text, name=name, lossless=True)


def encode_corpus(ids: np.ndarray, tokenizer: SubwordTokenizer, *,
                  cache: pathlib.Path) -> np.ndarray:
    """The token ids (``int32``) of a character split ``ids``, cached in ``cache`` by the
    split's content and the tokenizer."""
    key = _sha(np.ascontiguousarray(ids).tobytes() + tokenizer.json.encode())
    return cached_file(cache / f"tokens-{key}.npy", lambda: tokenizer.encode(chars.decode(ids)))


TOKEN_SPLITS = ("train", "validation", "test")
CHECKED_TOKENS = 10_000_000
"""How many leading ids of a token split :func:`load_token_split` checks against the
vocabulary (all of a smaller split)."""


def load_token_split(directory: str | os.PathLike, split: str, *,
                     vocab_size: int) -> np.ndarray:
    """``<directory>/<split>.npy`` memory-mapped: 1-D integer token ids, the first
    :data:`CHECKED_TOKENS` checked to lie in ``[0, vocab_size)``."""
    if split not in TOKEN_SPLITS:
        raise ValueError(f"split must be one of {list(TOKEN_SPLITS)}, got {split!r}")
    file = pathlib.Path(directory) / f"{split}.npy"
    if not file.is_file():
        raise FileNotFoundError(f"the token corpus {str(directory)!r} has no {file.name} "
                                f"(experiments/tokenize_corpus.py writes train.npy, "
                                f"validation.npy and test.npy)")
    tokens = np.load(file, mmap_mode="r")
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer) or tokens.size == 0:
        raise ValueError(f"{file} must hold a non-empty 1-D integer array of token ids, got "
                         f"{tokens.dtype}{list(tokens.shape)}")
    head = np.asarray(tokens[:CHECKED_TOKENS])
    if head.min() < 0 or head.max() >= vocab_size:
        raise ValueError(f"{file} holds ids in [{head.min()}, {head.max()}], outside the "
                         f"tokenizer's [0, {vocab_size})")
    return tokens


def _documents(path: pathlib.Path, chunk: int):
    with open(path, encoding="utf-8") as f:
        while lines := list(itertools.islice(f, chunk)):
            yield [line.rstrip("\n") for line in lines]


def _write_split(tokenizer: SubwordTokenizer, text_file: pathlib.Path,
                  out_file: pathlib.Path, *, separator: int | None, chunk: int) -> int:
    """Writes ``out_file`` (.npy) with the tokens of ``text_file``'s documents; returns the
    token count."""
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
    raw = out_file.with_suffix(".raw")
    count = 0
    with open(raw, "wb") as sink:
        for documents in _documents(text_file, chunk):
            for encoding in tokenizer.tokenizer.encode_batch(documents,
                                                            add_special_tokens=False):
                ids = encoding.ids + ([] if separator is None else [separator])
                np.asarray(ids, dtype).tofile(sink)
                count += len(ids)
    if count == 0:
        raw.unlink()
        raise ValueError(f"{text_file} holds no tokens")
    tmp = out_file.with_name(f"{out_file.stem}.tmp{os.getpid()}.npy")
    target = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(count,))
    source = np.memmap(raw, dtype=dtype, mode="r", shape=(count,))
    for start in range(0, count, 1 << 26):
        target[start:start + (1 << 26)] = source[start:start + (1 << 26)]
    target.flush()
    del target, source
    os.replace(tmp, out_file)   # atomic: a reader never sees a partial split
    raw.unlink()
    return count


def write_token_corpus(tokenizer_file, splits: dict, out, *, separator: str | None = None,
                       chunk: int = 10_000) -> dict:
    """A pre-tokenised corpus: ``out/<split>.npy`` for each ``{split: text_file}`` (train and
    validation, optionally test), each file one document per line, each document's tokens
    followed by the ``separator`` token's id when one is given; streamed in chunks of
    ``chunk`` lines, so a corpus larger than memory works. Returns the token counts."""
    tokenizer = load_tokenizer_file(tokenizer_file)
    separator_id = None
    if separator is not None:
        separator_id = tokenizer.tokenizer.token_to_id(separator)
        if separator_id is None:
            raise ValueError(f"separator {separator!r} is not a token of {tokenizer_file}")
    unknown = sorted(set(splits) - set(TOKEN_SPLITS))
    if unknown or "train" not in splits or "validation" not in splits:
        raise ValueError(f"splits must name train and validation (and optionally test), got "
                         f"{sorted(splits)}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {split: _write_split(tokenizer, pathlib.Path(text_file), out / f"{split}.npy",
                                 separator=separator_id, chunk=chunk)
            for split, text_file in splits.items()}


def characters_per_token(ids: np.ndarray, tokens: np.ndarray) -> float:
    """The characters per token of a split: ``len(ids) / len(tokens)``."""
    if len(tokens) == 0:
        raise ValueError("the split has no tokens")
    return len(ids) / len(tokens)
