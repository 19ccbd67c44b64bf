"""The character codec: the characters of an alphabet <-> ids ``0 .. len(alphabet) - 1``.

The text8 alphabet (:data:`TEXT8_ALPHABET`) is ``a``-``z`` (ids 0-25) then space (26). The
character corpora of :mod:`jaxdiff.data.text` store these ids; the tokenizer
:class:`jaxdiff.discrete.CharTokenizer` adds ``[MASK]`` as the next id (27) through
``tokens``. Encoding is vectorised (a lookup table on the code points), so a 100M-character
corpus encodes in about a second.
"""

import re
from collections.abc import Sequence

import numpy as np

TEXT8_ALPHABET = "abcdefghijklmnopqrstuvwxyz "


def _describe(alphabet: str, tokens: Sequence[str]) -> str:
    """``"a-z and space"``: runs of >= 3 consecutive code points as ranges, then ``tokens``."""
    parts, start = [], 0
    while start < len(alphabet):
        stop = start + 1
        while stop < len(alphabet) and ord(alphabet[stop]) == ord(alphabet[stop - 1]) + 1:
            stop += 1
        if stop - start >= 3:
            parts.append(f"{alphabet[start]}-{alphabet[stop - 1]}")
        else:
            parts += ["space" if c == " " else repr(c) for c in alphabet[start:stop]]
        start = stop
    parts += list(tokens)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _lowercase(piece: str) -> str:
    """``piece.lower()`` character by character, keeping a character whose lowercase is not a
    single character (so positions are unchanged)."""
    lowered = piece.lower()
    if len(lowered) == len(piece):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in piece)


def encode(text: str, alphabet: str = TEXT8_ALPHABET, *, tokens: Sequence[str] = (),
           lowercase: bool = False) -> np.ndarray:
    """The ids of ``text``: character ``c`` -> ``alphabet.index(c)``, token ``tokens[j]`` ->
    ``len(alphabet) + j``.

    Args:
      text: the string.
      alphabet: the characters, in id order, distinct (default: text8's).
      tokens: multi-character symbols with the ids after the alphabet's (e.g. ``"[MASK]"``),
        matched before the characters (and before lowercasing).
      lowercase: lowercase the characters outside ``tokens`` first.

    Returns:
      ``int32 [N]``.

    Raises:
      ValueError: naming the first character outside the alphabet and its position in
        ``text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    codes = np.array([ord(c) for c in alphabet], np.int64)
    table = np.full(int(codes.max()) + 2, -1, np.int32)  # the last entry: beyond the alphabet
    table[codes] = np.arange(len(alphabet), dtype=np.int32)
    pieces = re.split("(" + "|".join(map(re.escape, tokens)) + ")", text) if tokens else [text]
    ids, position = [], 0
    for piece in pieces:
        if piece in tokens:
            ids.append(np.asarray([len(alphabet) + list(tokens).index(piece)], np.int32))
        elif piece:
            chars = _lowercase(piece) if lowercase else piece
            points = np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), np.uint32)
            piece_ids = table[np.minimum(points, table.size - 1)]
            bad = piece_ids < 0
            if bad.any():
                at = int(np.argmax(bad))
                raise ValueError(f"text must hold only {_describe(alphabet, tokens)}, found "
                                 f"{piece[at]!r} at position {position + at}")
            ids.append(piece_ids)
        position += len(piece)
    return np.concatenate(ids) if ids else np.zeros((0,), np.int32)


def decode(ids, alphabet: str = TEXT8_ALPHABET, *, tokens: Sequence[str] = ()) -> str:
    """The string of ``ids [N]`` (inverse of :func:`encode`, up to lowercasing).

    Args:
      ids: 1-D integer ids in ``[0, len(alphabet) + len(tokens))``.
      alphabet: the characters, in id order.
      tokens: the symbols of the ids after the alphabet's.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    num_symbols = len(alphabet) + len(tokens)
    if ids.size and (ids.min() < 0 or ids.max() >= num_symbols):
        raise ValueError(f"ids must lie in [0, {num_symbols}), got values in "
                         f"[{ids.min()}, {ids.max()}]")
    symbols = np.asarray(list(alphabet) + list(tokens), dtype=object)
    return "".join(symbols[ids].tolist())
