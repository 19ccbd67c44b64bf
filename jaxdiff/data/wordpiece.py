"""BERT's uncased WordPiece tokenizer (Devlin et al. 2019; Wu et al. 2016), in plain Python.

What ``tokenizers``' ``BertNormalizer`` + ``BertPreTokenizer`` + ``WordPiece`` model do with an
uncased BERT vocabulary (``vocab.txt``, one token per line, the id is the line number):

1. clean: drop NUL, U+FFFD and control characters; every whitespace character becomes a space;
2. put spaces around CJK ideographs;
3. lowercase, after stripping accents (NFD, then drop the non-spacing marks);
4. split on whitespace, and every punctuation character is a word of its own;
5. each word becomes the longest vocabulary prefix, then the longest ``##``-continuation, and
   so on; a word that cannot be covered, or longer than 100 characters, is ``[UNK]``.

A caption is ``[CLS] pieces [SEP]``. Tested token for token against ``tokenizers`` reading the
same model's ``tokenizer.json``.
"""

import dataclasses
import unicodedata

import numpy as np

MAX_WORD_CHARS = 100
CONTINUATION = "##"


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def normalize(text: str) -> str:
    """Steps 1-3: cleaned, CJK spaced, accents stripped, lowercased."""
    chars = []
    for char in text:
        if ord(char) in (0, 0xFFFD) or _is_control(char):
            continue
        if _is_whitespace(char):
            chars.append(" ")
        elif _is_cjk(ord(char)):
            chars.append(f" {char} ")
        else:
            chars.append(char)
    stripped = "".join(c for c in unicodedata.normalize("NFD", "".join(chars))
                       if unicodedata.category(c) != "Mn")
    return stripped.lower()


def split_words(text: str) -> list[str]:
    """Step 4 on normalised text: whitespace-separated words, punctuation split off."""
    words = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if _is_punctuation(char):
                if current:
                    words.append(current)
                words.append(char)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


@dataclasses.dataclass(frozen=True)
class WordPieceTokenizer:
    """An uncased WordPiece tokenizer over ``vocab`` (token -> id).

    ``encode(text)`` is the ids of ``[CLS] pieces [SEP]``; :meth:`encode_batch` pads them to
    one length with ``[PAD]`` and returns the mask of real tokens.
    """

    vocab: dict[str, int]
    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    pad: str = "[PAD]"

    def __post_init__(self):
        missing = [t for t in (self.unk, self.cls, self.sep, self.pad) if t not in self.vocab]
        if missing:
            raise ValueError(f"vocab lacks the special token(s) {missing}")

    @classmethod
    def from_file(cls, path) -> "WordPieceTokenizer":
        """The tokenizer of a ``vocab.txt`` (one token per line; id = line number)."""
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        return cls({token: i for i, token in enumerate(tokens)})

    @classmethod
    def of_words(cls, texts) -> "WordPieceTokenizer":
        """A whole-word vocabulary: ``[PAD] [UNK] [CLS] [SEP]`` (ids 0-3), then every word of
        ``texts`` (after steps 1-4) in sorted order -- the tokenizer of a text encoder
        trained on these texts alone."""
        words = sorted({w for text in texts for w in split_words(normalize(text))})
        return cls({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])})

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` that this vocabulary cannot cover (they become ``[UNK]``)."""
        return [w for w in split_words(normalize(text)) if self._pieces(w) == [self.unk]]

    def _pieces(self, word: str) -> list[str]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return [self.unk]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text`` (no special tokens)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return [p for word in split_words(normalize(text)) for p in self._pieces(word)]

    def encode(self, text: str) -> list[int]:
        """The ids of ``[CLS] tokenize(text) [SEP]``."""
        return [self.vocab[t] for t in (self.cls, *self.tokenize(text), self.sep)]

    def encode_batch(self, texts, *, max_length: int,
                     truncate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int32 [N, max_length], mask bool [N, max_length])`` of ``texts``, padded
        with ``[PAD]`` (mask False).

        The empty caption ``""`` is ``[CLS] [SEP]`` (the null caption of classifier-free
        guidance); any other text with no word piece (only spaces or control characters) is
        a ``ValueError``, since it would silently be the null caption. A text of more than
        ``max_length`` ids is a ``ValueError`` unless ``truncate``, which keeps the first
        ``max_length - 1`` ids and ends with ``[SEP]`` (what BERT tokenizers do).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, got one str (wrap it in a list)")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
        ids = np.full((len(texts), max_length), self.vocab[self.pad], np.int32)
        mask = np.zeros((len(texts), max_length), bool)
        for row, text in enumerate(texts):
            encoded = self.encode(text)
            if text and len(encoded) == 2:
                raise ValueError(f"texts[{row}] = {text!r} has no word piece (only spaces or "
                                 f"control characters); the null caption is ''")
            if len(encoded) > max_length:
                if not truncate:
                    raise ValueError(f"texts[{row}] = {text!r} is {len(encoded)} tokens, more "
                                     f"than max_length={max_length} (truncate=True keeps the "
                                     f"first {max_length - 1} and [SEP])")
                encoded = encoded[:max_length - 1] + [self.vocab[self.sep]]
            ids[row, :len(encoded)] = encoded
            mask[row, :len(encoded)] = True
        return ids, mask
