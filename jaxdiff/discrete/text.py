"""A character tokenizer (text8 style) and text-level inpainting.

The default alphabet is text8's: ``a``-``z`` and space (ids 0-26), plus ``[MASK]`` (id 27), so
``V = 28``. In strings, the literal ``[MASK]`` stands for the mask token.

:func:`inpaint_text` fills the ``[MASK]`` spans of a template such as
``"The [MASK] sat on the [MASK]"``: each ``[MASK]`` becomes a span of ``mask_length`` masked
characters (an int for every span, or one length per span), every other character is a known
token clamped at every sampling step, and the sampler fills the spans. The sequence length is
that of the expanded template, so the result keeps the template's known characters exactly
(after lowercasing) and has exactly the requested span lengths.
"""

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxdiff import chars
from jaxdiff._validation import check_int
from jaxdiff.discrete.masking import MaskedProcess
from jaxdiff.discrete.samplers import d3pm_sample
from jaxdiff.discrete.transitions import D3PMProcess
from jaxdiff.discrete.unmasking import masked_sample

MASK_TOKEN = "[MASK]"


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """Characters to ids and back; ids ``0 .. len(alphabet)-1`` then ``[MASK]``.

    ``encode`` lowercases its input (text8 is lowercase) and reads the literal ``[MASK]`` as the
    mask token; any other character outside the alphabet is an error that names it and its
    position. ``decode`` writes the mask id back as ``[MASK]``.

    Attributes:
      alphabet: the characters, in id order (default: text8's ``a``-``z`` and space).
    """

    alphabet: str = chars.TEXT8_ALPHABET

    def __post_init__(self):
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet must be non-empty with distinct characters, "
                             f"got {self.alphabet!r}")
        if any(c in self.alphabet for c in "[]"):
            raise ValueError("alphabet must not contain '[' or ']' (they spell [MASK])")

    @property
    def mask_id(self) -> int:
        """The ``[MASK]`` id, ``len(alphabet)``."""
        return len(self.alphabet)

    @property
    def vocab_size(self) -> int:
        """``V = len(alphabet) + 1``."""
        return len(self.alphabet) + 1

    @property
    def data_vocab_size(self) -> int:
        """The ids text encodes to, ``len(alphabet)`` (a uniform process's vocabulary)."""
        return len(self.alphabet)

    def encode(self, text: str) -> np.ndarray:
        """``int32 [N]`` ids of ``text`` (lowercased; ``[MASK]`` -> :attr:`mask_id`), by
        :func:`jaxdiff.chars.encode`."""
        return chars.encode(text, self.alphabet, tokens=(MASK_TOKEN,), lowercase=True)

    def decode(self, ids) -> str:
        """The string of ``ids [N]`` (the mask id becomes ``[MASK]``), by
        :func:`jaxdiff.chars.decode`."""
        return chars.decode(ids, self.alphabet, tokens=(MASK_TOKEN,))


def expand_template(template: str, mask_length: int | Sequence[int],
                    tokenizer: CharTokenizer) -> np.ndarray:
    """The template's ids with each ``[MASK]`` expanded to a span of masked ids.

    Args:
      template: text with ``[MASK]`` placeholders.
      mask_length: span length of every ``[MASK]`` (int), or one length per ``[MASK]``.
      tokenizer: the tokenizer.

    Returns:
      ``int32 [L]`` ids, :attr:`CharTokenizer.mask_id` inside the spans.
    """
    ids = tokenizer.encode(template)
    num_spans = int(np.sum(ids == tokenizer.mask_id))
    if isinstance(mask_length, (int, np.integer)) and not isinstance(mask_length, bool):
        lengths = [check_int("mask_length", mask_length)] * num_spans
    else:
        lengths = [check_int("mask_length[i]", n) for n in mask_length]
        if len(lengths) != num_spans:
            raise ValueError(f"mask_length has {len(lengths)} lengths but the template has "
                             f"{num_spans} [MASK] spans")
    pieces, span = [], 0
    for token in ids:
        if token == tokenizer.mask_id:
            pieces.append(np.full(lengths[span], tokenizer.mask_id, np.int32))
            span += 1
        else:
            pieces.append(np.asarray([token], np.int32))
    return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)


def inpaint_text(key, denoise_fn, process, template: str, *, mask_length: int | Sequence[int],
                 num_steps: int | None = None, num_samples: int = 1,
                 tokenizer: CharTokenizer | None = None, cond=None,
                 float64: bool = False) -> list[str]:
    """Fills the ``[MASK]`` spans of ``template``, ``num_samples`` times.

    Known characters are clamped at every step of :func:`masked_sample` (for a
    :class:`MaskedProcess`) or :func:`d3pm_sample` (for an absorbing :class:`D3PMProcess`),
    so they come back unchanged.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> x0 logits [B, L, V]``.
      process: a masked process, or an absorbing D3PM process, over the tokenizer's vocabulary
        with the tokenizer's mask id.
      template: e.g. ``"The [MASK] sat on the [MASK]"`` (lowercased).
      mask_length: characters per ``[MASK]`` span: an int, or one int per span.
      num_steps: sampler steps (required for a masked process; D3PM default ``T``).
      num_samples: how many completions (the batch size).
      tokenizer: default :class:`CharTokenizer` (text8).
      cond: conditioning for ``denoise_fn`` (batch first, ``num_samples`` rows).
      float64: categorical draws in float64 (see :mod:`jaxdiff.discrete.samplers`).

    Returns:
      ``num_samples`` strings, each as long as the expanded template.
    """
    tokenizer = CharTokenizer() if tokenizer is None else tokenizer
    num_samples = check_int("num_samples", num_samples)
    if isinstance(process, D3PMProcess) and process.transition != "absorbing":
        raise ValueError(f"inpaint_text needs a masked or absorbing process, got the "
                         f"{process.transition!r} D3PM transition (it has no [MASK] token)")
    if not isinstance(process, (MaskedProcess, D3PMProcess)):
        raise TypeError(f"process must be a MaskedProcess or an absorbing D3PMProcess, "
                        f"got {type(process).__name__}")
    if process.vocab_size != tokenizer.vocab_size or process.mask_id != tokenizer.mask_id:
        raise ValueError(f"process (vocab_size={process.vocab_size}, mask_id="
                         f"{process.mask_id}) does not match the tokenizer (vocab_size="
                         f"{tokenizer.vocab_size}, mask_id={tokenizer.mask_id})")
    ids = expand_template(template, mask_length, tokenizer)
    if ids.size == 0:
        raise ValueError("template is empty")
    values = jnp.asarray(np.tile(ids, (num_samples, 1)))
    known = values != tokenizer.mask_id
    shape = (num_samples, ids.size)
    if isinstance(process, MaskedProcess):
        if num_steps is None:
            raise ValueError("num_steps is required for a masked process")
        out = masked_sample(key, denoise_fn, process, shape, num_steps=num_steps, cond=cond,
                            float64=float64, inpaint_mask=known, inpaint_values=values)
    else:
        out = d3pm_sample(key, denoise_fn, process, shape, num_steps=num_steps, cond=cond,
                          float64=float64, inpaint_mask=known, inpaint_values=values)
    return [tokenizer.decode(row) for row in np.asarray(out)]
