"""Conditions of the image denoisers: class labels with a reserved null class, and encoded
captions (:class:`TextCondition`), for classifier-free guidance.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance": one network learns the
conditional and the unconditional model by replacing the label with a null label for a
fraction of the training examples. Here the null label of a ``num_classes``-way model is
the id ``num_classes``, so label embeddings have ``num_classes + 1`` rows; the null caption
of a text-conditioned model is the empty caption ``""``.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff._validation import (
    check_divisible,
    check_floating,
    check_int,
    check_integer,
    check_rate,
    check_real,
    is_concrete,
)
from jaxdiff.typing import Array, PRNGKey


def class_labels(cond: Array | None, *, num_classes: int | None, batch_size: int) -> Array | None:
    """Validates ``cond`` as ``int [B]`` labels; ``None`` becomes the null class.

    Returns ``None`` for an unconditional model (``num_classes is None``), which must
    receive ``cond=None``.
    """
    if num_classes is None:
        if cond is not None:
            raise ValueError("cond must be None: the model was built with num_classes=None")
        return None
    if cond is None:
        return jnp.full((batch_size,), num_classes, dtype=jnp.int32)
    check_integer("cond", cond, shape=(batch_size,))
    return cond


def drop_labels(key: PRNGKey, labels: Array, *, num_classes: int, rate: float) -> Array:
    """Replaces each label by the null class ``num_classes`` with probability ``rate``.

    Applied to the training labels, this trains the unconditional branch used by
    classifier-free guidance (Ho & Salimans 2022, Alg. 1; ``rate`` 0.1 in DiT).
    """
    check_integer("labels", labels, shape=(None,))
    check_rate("rate", rate)
    dropped = jax.random.bernoulli(key, rate, labels.shape)
    return jnp.where(dropped, jnp.asarray(num_classes, labels.dtype), labels)


def caption_tokens(cond, *, length: int, vocab_size: int, batch_size: int) -> "CaptionTokens":
    """Validates ``cond`` as the :class:`CaptionTokens` of ``batch_size`` captions of at most
    ``length`` tokens with ids in ``[0, vocab_size)`` (checked when concrete; the input of a
    network with its own text encoder)."""
    if not isinstance(cond, CaptionTokens):
        raise ValueError(f"cond must be CaptionTokens (ids, mask) for a network with its own "
                         f"text encoder (caption_vocab_size); the unconditional input is the "
                         f"tokenised empty caption '', got {type(cond).__name__}")
    check_integer("cond.ids", cond.ids, shape=(batch_size, None))
    if cond.ids.shape[1] > length:
        raise ValueError(f"cond.ids has {cond.ids.shape[1]} tokens, more than the network's "
                         f"caption_length={length}")
    _check_mask(cond.mask, cond.ids.shape)
    if is_concrete(cond.ids) and not np.all((np.asarray(cond.ids) >= 0)
                                            & (np.asarray(cond.ids) < vocab_size)):
        raise ValueError(f"cond.ids must lie in [0, caption_vocab_size={vocab_size}), got "
                         f"values in [{np.min(cond.ids)}, {np.max(cond.ids)}]")
    return cond


def _check_mask(mask, shape) -> None:
    if mask.shape != tuple(shape) or mask.dtype != jnp.bool_:
        raise ValueError(f"cond.mask must be bool [B, S] = {tuple(shape)}, got "
                         f"{mask.dtype}{list(mask.shape)}")


def text_condition(cond, *, text_dim: int, batch_size: int) -> "TextCondition":
    """Validates ``cond`` as the :class:`TextCondition` of ``batch_size`` captions of width
    ``text_dim``; a text-conditioned network has no "no caption": its unconditional input is
    the encoded empty caption."""
    if not isinstance(cond, TextCondition):
        raise ValueError(f"cond must be a TextCondition (tokens, mask, pooled) for a "
                         f"text-conditioned network (text_dim={text_dim}); the unconditional "
                         f"input is the encoded empty caption '', got {type(cond).__name__}")
    check_floating("cond.tokens", cond.tokens, shape=(batch_size, None, text_dim))
    _check_mask(cond.mask, cond.tokens.shape[:2])
    check_floating("cond.pooled", cond.pooled, shape=(batch_size, text_dim))
    return cond


def image_denoiser_inputs(config, x_t: Array, t: Array, cond,
                          dropout_key: PRNGKey | None) -> tuple[Any, nnx.Rngs | None]:
    """The shared entry of the image denoisers (UNet, DiT): checks ``x_t``
    ``[B, image_size, image_size, in_channels]`` (floating) and ``t`` ``[B]`` against
    ``config``, and returns the condition -- the class labels (:func:`class_labels`), or for
    a network with ``text_dim`` the captions (:func:`text_condition`, or
    :func:`caption_tokens` for a network with its own text encoder) -- and the dropout RNGs
    (None in eval mode, when ``dropout_key`` is None)."""
    size = config.image_size
    check_floating("x_t", x_t, shape=(None, size, size, config.in_channels))
    batch = x_t.shape[0]
    check_real("t", t, shape=(batch,))
    if config.caption_vocab_size is not None:
        condition = caption_tokens(cond, length=config.caption_length,
                                   vocab_size=config.caption_vocab_size, batch_size=batch)
    elif config.text_dim is not None:
        condition = text_condition(cond, text_dim=config.text_dim, batch_size=batch)
    else:
        condition = class_labels(cond, num_classes=config.num_classes, batch_size=batch)
    return condition, None if dropout_key is None else nnx.Rngs(dropout=dropout_key)


def check_text_config(config) -> None:
    """``text_dim`` (captions) and ``num_classes`` (labels) are two kinds of condition: a
    network takes at most one; its own text encoder (``caption_vocab_size``,
    ``caption_length``, ``caption_depth``, ``caption_heads``) needs ``text_dim``, its width."""
    if config.caption_vocab_size is not None:
        if config.text_dim is None:
            raise ValueError(f"caption_vocab_size={config.caption_vocab_size} (the network's "
                             f"own text encoder) needs text_dim, the encoder's width")
        for name in ("caption_vocab_size", "caption_length", "caption_depth",
                     "caption_heads"):
            check_int(name, getattr(config, name))
        check_divisible("text_dim", config.text_dim, "caption_heads", config.caption_heads)
    if config.text_dim is not None:
        if isinstance(config.text_dim, bool) or not isinstance(config.text_dim, int) \
                or config.text_dim < 1:
            raise ValueError(f"text_dim must be None or an int >= 1, got {config.text_dim!r}")
        if config.num_classes is not None:
            raise ValueError(f"text_dim={config.text_dim} and num_classes="
                             f"{config.num_classes}: a network is conditioned on captions or on "
                             f"class labels, not both")


class TextCondition(NamedTuple):
    """A batch of encoded captions: what a text-conditioned denoiser takes as ``cond``.

    Attributes:
      tokens: ``float [B, S, C]``, the text encoder's token embeddings (cross-attention's
        keys and values).
      mask: ``bool [B, S]``, True on a caption's real tokens (padding is False and gets no
        attention weight); every row has at least one.
      pooled: ``float [B, P]``, one vector per caption (added to the time embedding).

    A pytree: it passes through ``jit``, ``vmap``, ``lax.scan`` and the guidance's batch
    concatenation like an array.
    """

    tokens: Array
    mask: Array
    pooled: Array


class CaptionTokens(NamedTuple):
    """A batch of tokenised captions: the ``cond`` of a denoiser with its own text encoder
    (``caption_vocab_size``; :class:`~jaxdiff.models.caption_encoder.CaptionEncoder`).

    Attributes:
      ids: ``int32 [B, S]`` token ids, ``[CLS] words [SEP]`` then padding.
      mask: ``bool [B, S]``, True on the real tokens.
    """

    ids: Array
    mask: Array
