"""The text modality: a character corpus, random windows, text samples.

Shared by every text process (``absorbing``, ``uniform``, ``masked``, ``block``, SEDD,
``autoregressive``): the character tokenizer (a-z, space; id 27 is ``[MASK]``, or the
autoregressive baseline's BOS), random ``data.seq_len``-character training windows
``{"tokens"}``, the first validation windows as the held-out batches, the bound in bits per
character the loop logs, and samples written one per line. :class:`TextEvaluation` is what
the text report asks of a text process.

Tokens (``data.tokenizer``, :func:`text_tokenizer`): characters (the default), a BPE
tokenizer of ``data.vocab_size`` tokens trained on the corpus's training split
(``"bpe"``), or a ``tokenizer.json`` file (:mod:`jaxdiff.data.subword`); ``data.seq_len``
counts tokens, and the logged ``eval_bpc`` converts the per-token bound with the validation
split's measured characters per token. A subword run also logs ``eval_ppl``, the
perplexity (bound) per token, the papers' metric; a pre-tokenised corpus
(``data.name="tokens"``, ``data.path`` its directory, ``data.tokenizer`` the file that made
it) has no characters and logs ``eval_ppl`` alone.

Label-conditioned text (``data.conditional`` on ``enwiki_gensim``; the diffusion processes
with an x0 denoiser, :data:`GUIDED_SAMPLER_OPTIONS`): every window carries its article group
(:func:`jaxdiff.data.article_labels`, ``data.article_groups`` of them) as ``batch["label"]``;
training replaces it by the null label at ``diffusion.label_dropout`` (default 0.1), the
held-out bound is the conditional one given the true label, and the samplers take
``classes`` (default round-robin over the groups) and ``guidance_scale``
(:func:`jaxdiff.discrete.guided_denoiser`: guidance on the x0 logits).
"""

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import jax
import numpy as np

from jaxdiff import data, discrete
from jaxdiff._validation import config_error
from jaxdiff.data import subword
from jaxdiff.models.functional import bind
from jaxdiff.models.text_transformer import TextTransformerConfig
from jaxdiff.tasks import conditions
from jaxdiff.tasks.base import Modality
from jaxdiff.tasks.images import LABEL_DROPOUT as IMAGE_LABEL_DROPOUT
from jaxdiff.units import bits_per_unit

TOKENIZER = discrete.CharTokenizer()     # a-z, space and [MASK] (V = 28)
CHARS, BPE = "chars", "bpe"
BPE_VOCAB_SIZE = 512
"""``data.vocab_size`` of a ``"bpe"`` run when None."""
LABEL_DROPOUT = IMAGE_LABEL_DROPOUT
"""The default ``diffusion.label_dropout`` of a label-conditioned text run (as for images)."""


@dataclasses.dataclass(frozen=True)
class TextEvaluation:
    """The process-specific parts of the text report (:mod:`jaxdiff.evaluation.text`).

    Attributes:
      bound: ``(run, *, bound_samples) -> bound(params, key, tokens) -> nats [B]``: the
        process's negative log-likelihood bound per row (``bound_samples`` Monte Carlo
        terms where it is estimated); a conditional run's also takes ``cond`` (the rows'
        labels) and is the conditional bound.
      exact: the bound is the exact NLL (the autoregressive baseline): such a run can score
        other runs' samples (generative perplexity).
      describe: ``(bound_samples) -> str``: the estimator, for the report's protocol.
      token_accuracy: ``(key, denoise_fn, process, tokens, *, num_buckets)`` -> the argmax
        x0 accuracy per time bucket (:mod:`jaxdiff.metrics.diagnostics`), or None for a
        process without a corruption time.
    """

    bound: Callable
    exact: bool
    describe: Callable[[int], str]
    token_accuracy: Callable | None


DIFFUSION_SAMPLER_OPTIONS = ("num_steps", "float64", "inpaint_mask", "inpaint_values")
GUIDED_SAMPLER_OPTIONS = ("classes", "guidance_scale")
"""The options of the samplers of a process that trains label-conditioned."""


def check_unconditional(config, process: str) -> None:
    """The ``check_config`` part of a text process without label conditioning."""
    if config.data.conditional:
        raise config_error("data.conditional", f"process {process!r} trains unconditional "
                                               f"text models; label-conditioned text is for "
                                               f"the absorbing, uniform, masked and block "
                                               f"processes")


def sampling_conditions(run, count: int, *, classes=None, guidance_scale=None):
    """``(cond, null_cond)`` of ``count`` samples of a text run: ``classes`` (article groups,
    default round-robin) and the null label; ``(None, None)`` for an unconditional run,
    where ``classes`` or ``guidance_scale`` are a ``ValueError``."""
    return conditions.class_conditions(run.model_config.num_classes).for_sampling(
        count, classes=classes, guidance_scale=guidance_scale)


def guided_text_denoiser(run, params, cond, null_cond, guidance_scale) -> Callable:
    """The sampler's ``denoise_fn(z_t, t, cond=None)``: the run's denoiser with ``params``,
    ``cond`` bound, guided at ``guidance_scale`` (None: not guided)."""
    return discrete.guided_denoiser(text_denoiser(run, run.apply_fn(), params), cond,
                                    guidance_scale=guidance_scale, null_cond=null_cond)


def diffusion_sampler(sample_fn) -> Callable:
    """The ``make_sampler`` of a text diffusion process whose one sampler (``ancestral``) is
    ``sample_fn(key, denoise_fn, process, shape, *, num_steps, float64, inpaint_mask,
    inpaint_values)`` (:func:`jaxdiff.discrete.d3pm_sample`)."""

    def make_sampler(run, *, count: int, sampler: str, num_steps: int | None = None,
                     float64: bool = False, inpaint_mask=None, inpaint_values=None,
                     classes=None, guidance_scale=None):
        del sampler   # the one sampler
        shape = text_sample_shape(run, count, inpaint_values)
        cond, null = sampling_conditions(run, count, classes=classes,
                                         guidance_scale=guidance_scale)

        @jax.jit
        def sample(key, params):
            return sample_fn(key, guided_text_denoiser(run, params, cond, null, guidance_scale),
                             run.process, shape, num_steps=num_steps, float64=float64,
                             inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)

        return sample

    return make_sampler


def text_denoiser(run, apply_fn, params, key=None) -> Callable:
    """``denoise_fn(x_t, t, cond)`` of ``apply_fn`` with ``params`` (and dropout ``key``); a
    network without time conditioning is called without ``t`` (the math always passes one;
    such a denoiser ignores it, as MDLM's and BD3-LM's do)."""
    denoise_fn = bind(apply_fn, params, key)
    if getattr(run.model_config, "time_conditioning", True):
        return denoise_fn
    return lambda x_t, t, cond=None: denoise_fn(x_t, None, cond)


def batch_condition(run, key, batch: dict, *, train: bool):
    """The network's condition of a batch: None (unconditional), the labels, or in training
    the labels with each replaced by the null label at ``diffusion.label_dropout``."""
    if not run.config.data.conditional:
        return None
    if not train:
        return batch["label"]
    return conditions.class_conditions(run.model_config.num_classes).dropped(
        key, batch, run.task.setting(run.config, "label_dropout"))


def diffusion_loss_fn(loss, run, *, train: bool) -> Callable:
    """``loss_fn(params, key, batch) -> [B]`` of a text diffusion whose loss is ``loss(key,
    denoise_fn, process, tokens, *, cond)`` (:func:`jaxdiff.discrete.masked_diffusion_loss`,
    ``block_diffusion_loss``); ``train`` runs the network in train mode (dropout from a split
    of ``key``) and drops labels (:func:`batch_condition`)."""
    apply_fn, process = run.apply_fn(train=train), run.process

    def loss_fn(params, key, batch):
        key_loss, key_dropout, key_labels = jax.random.split(key, 3)
        return loss(key_loss, text_denoiser(run, apply_fn, params, key_dropout), process,
                    batch["tokens"], cond=batch_condition(run, key_labels, batch, train=train))

    return loss_fn


def diffusion_bound(elbo_fn) -> Callable:
    """``TextEvaluation.bound`` of a process whose bound estimator is ``elbo_fn(key,
    denoise_fn, process, tokens, *, num_samples, cond)`` (:func:`jaxdiff.discrete.d3pm_elbo`,
    ``masked_elbo``)."""

    def make_bound(run, *, bound_samples: int):
        apply_fn = run.apply_fn()

        def bound(params, key, tokens, cond=None):
            return elbo_fn(key, text_denoiser(run, apply_fn, params), run.process, tokens,
                           num_samples=bound_samples, cond=cond)

        return bound

    return make_bound


@functools.lru_cache(maxsize=8)
def _tokenizer(name: str, path: str | None, tokenizer: str, vocab_size: int | None):
    if tokenizer == CHARS:
        return TOKENIZER
    if tokenizer == BPE:
        return subword.corpus_bpe(data.load_text_corpus(name, "train", path=path),
                                  vocab_size or BPE_VOCAB_SIZE, corpus=name,
                                  cache=data.text.cache_dir() / "text")
    return subword.load_tokenizer_file(tokenizer)


def text_tokenizer(config):
    """The run's tokenizer (``data.tokenizer``): :data:`TOKENIZER`, the corpus's BPE
    (trained once and cached) or the file's; each has ``encode``, ``decode``, ``mask_id``,
    ``vocab_size`` and ``data_vocab_size`` (the ids text encodes to)."""
    d = config.data
    return _tokenizer(d.name, d.path, d.tokenizer, d.vocab_size)


TOKEN_CORPUS = "tokens"
"""``data.name`` of a pre-tokenised corpus (:func:`jaxdiff.data.subword.load_token_split`)."""


@functools.lru_cache(maxsize=16)
def _split_tokens(name: str, path: str | None, tokenizer: str, vocab_size: int | None,
                  split: str) -> tuple[np.ndarray, float | None]:
    encoder = _tokenizer(name, path, tokenizer, vocab_size)
    if name == TOKEN_CORPUS:
        return subword.load_token_split(path, split, vocab_size=encoder.data_vocab_size), None
    ids = data.load_text_corpus(name, split, path=path)
    if encoder is TOKENIZER:
        return ids, 1.0
    tokens = subword.encode_corpus(ids, encoder, cache=data.text.cache_dir() / "text")
    return tokens, subword.characters_per_token(ids, tokens)


def split_tokens(config, split: str) -> np.ndarray:
    """The token ids of a corpus split in the run's tokens (characters: the character ids)."""
    d = config.data
    return _split_tokens(d.name, d.path, d.tokenizer, d.vocab_size, split)[0]


def split_rows(config, split: str) -> np.ndarray:
    """:func:`split_tokens` cut into ``data.seq_len``-token rows (:func:`jaxdiff.data.chunk`)."""
    return data.chunk(split_tokens(config, split), config.data.seq_len)


def characters_per_token(config, split: str) -> float | None:
    """The split's characters per token (1 for characters), which turns a bound per token
    into one per character; None for a pre-tokenised corpus."""
    d = config.data
    return _split_tokens(d.name, d.path, d.tokenizer, d.vocab_size, split)[1]


def vocabulary(config, *, absorbing: bool) -> dict:
    """``{"vocab_size", "mask_id"}`` of a process on the run's tokens: with ``[MASK]`` for
    an absorbing one, the text's ids alone (``mask_id`` None) for a uniform one."""
    tokenizer = text_tokenizer(config)
    if absorbing:
        return {"vocab_size": tokenizer.vocab_size, "mask_id": tokenizer.mask_id}
    return {"vocab_size": tokenizer.data_vocab_size, "mask_id": None}


def _check_config(config) -> None:
    d = config.data
    if d.name not in data.TEXT_CORPUS_NAMES + (TOKEN_CORPUS,):
        raise config_error("data.name", f"process {config.diffusion.process!r} trains on a "
                                        f"character corpus, one of "
                                        f"{list(data.TEXT_CORPUS_NAMES)}, or a pre-tokenised "
                                        f"one, {TOKEN_CORPUS!r}; got {d.name!r}")
    if d.name == TOKEN_CORPUS:
        if d.path is None or not pathlib.Path(d.path).is_dir():
            raise config_error("data.path", f"must be the directory of a pre-tokenised "
                                            f"corpus (train.npy, validation.npy), got "
                                            f"{d.path!r}")
        if d.tokenizer in (CHARS, BPE):
            raise config_error("data.tokenizer", f"of a pre-tokenised corpus must be the "
                                                 f"tokenizer.json that made it, got "
                                                 f"{d.tokenizer!r}")
    if d.conditional and d.name != "enwiki_gensim":
        raise config_error("data.conditional", f"label-conditioned text needs the article "
                                               f"groups of the 'enwiki_gensim' corpus; "
                                               f"{d.name!r} has no pages")
    if d.tokenizer not in (CHARS, BPE) and not pathlib.Path(d.tokenizer).is_file():
        raise config_error("data.tokenizer", f"must be {CHARS!r}, {BPE!r} or an existing "
                                             f"tokenizer.json file, got {d.tokenizer!r}")
    if d.vocab_size is not None and d.tokenizer != BPE:
        raise config_error("data.vocab_size", f"sizes the trained BPE (data.tokenizer="
                                              f"{BPE!r}); it must be None with "
                                              f"data.tokenizer={d.tokenizer!r}")
    alphabet = len(TOKENIZER.alphabet)
    if d.vocab_size is not None and (isinstance(d.vocab_size, bool)
                                     or not isinstance(d.vocab_size, int)
                                     or d.vocab_size < alphabet):
        raise config_error("data.vocab_size", f"must be an int >= {alphabet} (the "
                                              f"characters), got {d.vocab_size!r}")
    if d.conditional and d.tokenizer != CHARS:
        raise config_error("data.conditional", f"article groups label characters: "
                                               f"label-conditioned text needs "
                                               f"data.tokenizer={CHARS!r}, got "
                                               f"{d.tokenizer!r}")
    groups = d.article_groups
    if d.conditional and (isinstance(groups, bool) or not isinstance(groups, int) or groups < 2):
        raise config_error("data.article_groups", f"must be an int >= 2, got {groups!r}")
    conditions.check_label_dropout(config)
    if d.latents != "cached":
        raise config_error("data.latents", f"is for latent image runs; got {d.latents!r}")
    if (d.path is not None) != (d.name in ("text8", TOKEN_CORPUS)):
        raise config_error("data.path", f"is required for the 'text8' and {TOKEN_CORPUS!r} "
                                        f"corpora and only for them; got path={d.path!r} "
                                        f"with name={d.name!r}")


def _load(config):
    return split_tokens(config, "train"), split_rows(config, "validation")


def _model_fields(config, dataset) -> dict:
    del dataset
    d = config.data
    return {"max_length": d.seq_len, "num_classes": d.article_groups if d.conditional else None}


@functools.lru_cache(maxsize=8)
def split_labels(name: str, split: str, num_groups: int) -> np.ndarray:
    """:func:`jaxdiff.data.article_labels` of a split, computed once per process."""
    return data.article_labels(name, split, num_groups=num_groups)


def row_labels(config, split: str) -> np.ndarray:
    """The article group of each ``data.seq_len`` row of ``split`` (:func:`jaxdiff.data.chunk`'s
    rows): its first character's, ``int32 [rows]``."""
    d = config.data
    labels = split_labels(d.name, split, d.article_groups)
    return data.chunk(labels, d.seq_len)[:, 0]


def _train_batches(run, start_step: int):
    t, d = run.config.train, run.config.data

    def crops(ids):   # the same windows of any per-character array: a pure function of step
        return data.random_crops(ids, batch_size=t.batch_size, seq_len=d.seq_len, seed=t.seed,
                                 start_step=start_step)

    if not d.conditional:
        return ({"tokens": tokens} for tokens in crops(run.dataset))
    labels = split_labels(d.name, "train", d.article_groups)
    return ({"tokens": tokens, "label": windows[:, 0]}
            for tokens, windows in zip(crops(run.dataset), crops(labels), strict=True))


def _eval_batches(run) -> list:
    """The first ``train.eval_batches x train.batch_size`` validation windows, in order
    (this process's rows of each batch)."""
    t = run.config.train
    rows = run.eval_dataset
    needed = t.eval_batches * t.batch_size
    if len(rows) < needed:
        raise ValueError(f"train.eval_batches x train.batch_size = {needed} held-out "
                         f"sequences, but the validation split has only {len(rows)} of "
                         f"data.seq_len={run.config.data.seq_len} tokens")
    process, count = jax.process_index(), jax.process_count()
    local = t.batch_size // count
    fields = {"tokens": rows}
    if run.config.data.conditional:
        fields["label"] = row_labels(run.config, "validation")
    return [{name: values[i * t.batch_size + process * local:
                          i * t.batch_size + (process + 1) * local]
             for name, values in fields.items()}
            for i in range(t.eval_batches)]


def _held_out_metrics(run, eval_loss: float) -> dict:
    """``eval_bpc``: the held-out bound (nats per sequence) in bits per character (its
    tokens' characters: ``data.seq_len`` times the validation split's characters per
    token); ``eval_ppl`` of subword tokens: the perplexity per token."""
    length, ratio = run.config.data.seq_len, characters_per_token(run.config, "validation")
    metrics = {} if ratio is None else {"eval_bpc": bits_per_unit(eval_loss, length * ratio)}
    if text_tokenizer(run.config) is not TOKENIZER:
        metrics["eval_ppl"] = float(np.exp(eval_loss / length))
    return metrics


def text_sample_shape(run, count: int, inpaint_values=None) -> tuple[int, int]:
    """``(count, data.seq_len)``, or the length of the known tokens when inpainting (any
    length up to ``data.seq_len``)."""
    if inpaint_values is None:
        return (count, run.config.data.seq_len)
    length = inpaint_values.shape[-1]
    if length > run.config.data.seq_len:
        raise ValueError(f"inpaint_values has {length} tokens, more than the model's "
                         f"data.seq_len = {run.config.data.seq_len}")
    return (count, length)


def template_inpainting(template: str, *, mask_length, count: int, tokenizer=TOKENIZER):
    """``(inpaint_mask, inpaint_values)``, ``[count, L]``, of a text template such as
    ``"the [MASK] sat on the [MASK]"`` with each ``[MASK]`` a span of ``mask_length``
    unknown tokens (an int, or one per span) of ``tokenizer`` (the run's,
    :func:`text_tokenizer`): what a text task's sampler takes to fill the spans
    (``experiments/sample.py --inpaint``)."""
    ids = discrete.expand_template(template, mask_length, tokenizer)
    mask_id = tokenizer.mask_id
    if ids.size == 0 or not np.any(ids == mask_id):
        raise ValueError(f"template must hold text and at least one [MASK], got {template!r}")
    known = np.repeat((ids != mask_id)[None], count, axis=0)
    return known, np.repeat(np.where(ids == mask_id, 0, ids)[None], count, axis=0)


def _save_samples(run, path_stem, samples):
    path = path_stem.with_suffix(".txt")
    decode = text_tokenizer(run.config).decode
    path.write_text("".join(decode(row) + "\n" for row in np.asarray(samples)))
    return path


TEXT = Modality(name="text", networks=(TextTransformerConfig,), check_config=_check_config,
                load=_load,
                model_fields=_model_fields, train_batches=_train_batches,
                eval_batches=_eval_batches, held_out_metrics=_held_out_metrics,
                sample_shape=text_sample_shape, save_samples=_save_samples)
