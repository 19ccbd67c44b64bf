"""Captioned images whose words fix the content and the layout: two items on one canvas.

``"mnist_fashion_pairs"`` (:func:`load_pairs`) composes two 16x16 items -- a digit of
``mnist_5k`` or a Fashion-MNIST item, 20 kinds (:data:`KINDS`) -- on a 32x32 canvas, side by
side or one above the other, captioned by what is where:

* ``"side"``: ``"a seven on the left and a sneaker on the right"``
  (the first item in columns 0-15, the second in 16-31, rows 8-23);
* ``"stack"``: ``"a three above an ankle boot"``
  (the first in rows 0-15, the second in 16-31, columns 8-23).

Every (first kind, second kind, layout) is one caption: 20 x 20 x 2 = 800 captions, the
label ids of the dataset (:attr:`ArrayDataset.captions` is the table; id 800 is the empty
caption, the null condition of classifier-free guidance). A caption changes the image, not
only its class: the same two kinds in the other order or layout are another caption.

Held out: the 80 combinations with ``(first - second) mod 20`` in ``{7, 13}``
(:func:`held_out_ids`, 10% of them, 20 per layout and residue, each kind once on each side),
never in the training split; every kind is still seen in both places in other combinations,
so a model that composes the words can draw them. The test split draws all 800 uniformly.

Items: the source images (28x28, in [-1, 1]) padded to 32 with the background -1 and
2x2-mean-pooled to 16x16; the first item of each pair from the source's split (train from
train, test from test: ``mnist_5k``'s 4000 / 1000 split and Fashion-MNIST's 60000 /
10000). A split is a pure function of the sources and :data:`SEED`: each row draws its
combination uniformly among the split's allowed ones and each item uniformly among the
source images of its kind. Train: :data:`SPLIT_SIZES` ``["train"]`` = 20000 rows, test 2000.
"""

import re

import numpy as np

from jaxdiff.data import embedded
from jaxdiff.data.arrays import ArrayDataset, to_unit_range
from jaxdiff.data.embedded import PAIRS_NAME

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot")
KINDS = DIGITS + FASHION
"""The 20 item kinds: kind ``k < 10`` is the digit ``k``, ``10 + j`` Fashion-MNIST's class
``j``."""
LAYOUTS = ("side", "stack")
ITEM_SIZE = 16
CANVAS_SIZE = 32
SPLIT_SIZES = {"train": 20000, "test": 2000}
SEED = 20260718
HELD_OUT_RESIDUES = (7, 13)

# where the two items go: (rows, columns) of their top-left corners per layout
_PLACES = {"side": ((8, 0), (8, 16)), "stack": ((0, 8), (16, 8))}


def _article(kind: str) -> str:
    """English's article by sound: "an eight", "an ankle boot", but "a one"."""
    return "an" if kind[0] in "aeiou" and kind != "one" else "a"


def caption(first: int, second: int, layout: str) -> str:
    """The caption of kinds ``first`` and ``second`` (indices of :data:`KINDS`) in
    ``layout``."""
    a, b = KINDS[first], KINDS[second]
    if layout == "side":
        return f"{_article(a)} {a} on the left and {_article(b)} {b} on the right"
    if layout == "stack":
        return f"{_article(a)} {a} above {_article(b)} {b}"
    raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")


def combinations() -> list[tuple[int, int, str]]:
    """Every ``(first, second, layout)``, in caption-id order."""
    return [(a, b, layout) for layout in LAYOUTS for a in range(len(KINDS))
            for b in range(len(KINDS))]


CAPTIONS = tuple(caption(*combo) for combo in combinations())
"""The caption table: ``CAPTIONS[i]`` is the caption of label id ``i``."""

_KIND_PATTERN = "|".join(re.escape(k) for k in sorted(KINDS, key=len, reverse=True))
_GRAMMAR = {
    "side": re.compile(rf"an? ({_KIND_PATTERN}) on the left and an? ({_KIND_PATTERN}) on the "
                       rf"right"),
    "stack": re.compile(rf"an? ({_KIND_PATTERN}) above an? ({_KIND_PATTERN})"),
}


def parse_caption(text: str) -> tuple[int, int, str]:
    """``(first, second, layout)`` of a caption in this data's grammar (case and spaces
    ignored); a ``ValueError`` names the grammar for any other text."""
    normalised = " ".join(text.lower().split())
    for layout, pattern in _GRAMMAR.items():
        match = pattern.fullmatch(normalised)
        if match:
            return KINDS.index(match.group(1)), KINDS.index(match.group(2)), layout
    raise ValueError(f"caption {text!r} is not of the form 'a <kind> on the left and a <kind> "
                     f"on the right' or 'a <kind> above a <kind>' with kinds {list(KINDS)}")


def held_out_ids() -> np.ndarray:
    """The caption ids never trained on: ``(first - second) mod 20`` in
    :data:`HELD_OUT_RESIDUES`."""
    return np.array([i for i, (a, b, _) in enumerate(combinations())
                     if (a - b) % len(KINDS) in HELD_OUT_RESIDUES], np.int32)


def item_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images float32 [N, 16, 16, 1] in [-1, 1], kinds int32 [N])``: the source items of
    ``split``, digits (kinds 0-9) then Fashion-MNIST (kinds 10-19), padded to 32 and
    2x2-mean-pooled."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be one of {list(SPLIT_SIZES)} for {PAIRS_NAME!r}, "
                         f"got {split!r}")
    raw, digit_labels = embedded.load_mnist_5k_raw()
    digits = to_unit_range(raw[embedded.embedded_split(len(digit_labels), split)], 255)
    digit_labels = digit_labels[embedded.embedded_split(len(digit_labels), split)]
    fashion_raw, fashion_labels = embedded.load_fashion_mnist_raw(split)
    images = np.concatenate([digits, to_unit_range(fashion_raw, 255)])
    kinds = np.concatenate([digit_labels, np.asarray(fashion_labels) + len(DIGITS)])
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=np.float32(-1))
    pooled = padded.reshape(-1, ITEM_SIZE, 2, ITEM_SIZE, 2, 1).mean(axis=(2, 4))
    return pooled.astype(np.float32), kinds.astype(np.int32)


def compose(items: np.ndarray, first: np.ndarray, second: np.ndarray,
            layouts: np.ndarray) -> np.ndarray:
    """``float32 [N, 32, 32, 1]`` canvases with ``items[first[i]]`` and ``items[second[i]]``
    placed by ``LAYOUTS[layouts[i]]``, background -1."""
    canvas = np.full((len(first), CANVAS_SIZE, CANVAS_SIZE, 1), -1.0, np.float32)
    for code, layout in enumerate(LAYOUTS):
        rows = np.flatnonzero(layouts == code)
        for which, (top, left) in zip((first, second), _PLACES[layout], strict=True):
            canvas[rows, top:top + ITEM_SIZE, left:left + ITEM_SIZE] = items[which[rows]]
    return canvas


def load_pairs(split: str) -> ArrayDataset:
    """The ``mnist_fashion_pairs`` split: 32x32x1 canvases, caption ids as labels."""
    items, kinds = item_images(split)
    combos = combinations()
    allowed = np.arange(len(combos))
    if split == "train":
        allowed = np.setdiff1d(allowed, held_out_ids())
    rng = np.random.default_rng([SEED, list(SPLIT_SIZES).index(split)])
    ids = rng.choice(allowed, size=SPLIT_SIZES[split]).astype(np.int32)
    by_kind = [np.flatnonzero(kinds == k) for k in range(len(KINDS))]
    firsts, seconds, layouts = (np.array(column) for column in zip(
        *[(a, b, LAYOUTS.index(layout)) for a, b, layout in (combos[i] for i in ids)],
        strict=True))

    def draw(kind_of_row):
        return np.array([by_kind[k][rng.integers(len(by_kind[k]))] for k in kind_of_row])

    images = compose(items, draw(firsts), draw(seconds), layouts)
    return ArrayDataset(images=images, labels=ids, num_classes=len(CAPTIONS),
                        name=f"{PAIRS_NAME}:{split}", captions=CAPTIONS)


def regions(images: np.ndarray, layout_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two 16x16 item regions ``(first, second)`` of each canvas, by its layout code."""
    firsts, seconds = (np.empty((len(images), ITEM_SIZE, ITEM_SIZE, images.shape[-1]),
                                images.dtype) for _ in range(2))
    for code, layout in enumerate(LAYOUTS):
        rows = np.flatnonzero(layout_codes == code)
        for out, (top, left) in zip((firsts, seconds), _PLACES[layout], strict=True):
            out[rows] = images[rows, top:top + ITEM_SIZE, left:left + ITEM_SIZE]
    return firsts, seconds
