"""The text modality: a character corpus, random windows, text samples.

Shared by every text process (``absorbing``, ``uniform``, ``masked``, ``autoregressive``):
the character tokenizer (a-z, space; id 27 is ``[MASK]``, or the autoregressive baseline's
BOS), random ``data.seq_len``-character training windows ``{"tokens"}``, the first
validation windows as the held-out batches, the bound in bits per character the loop logs,
and samples written one per line. :class:`TextEvaluation` is what the text report asks of
a text process.
"""

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from jaxdiff import data, discrete
from jaxdiff._validation import config_error
from jaxdiff.models.functional import bind
from jaxdiff.models.text_transformer import TextTransformerConfig
from jaxdiff.tasks.base import Modality
from jaxdiff.units import bits_per_unit

TOKENIZER = discrete.CharTokenizer()     # a-z, space and [MASK] (V = 28)


@dataclasses.dataclass(frozen=True)
class TextEvaluation:
    """The process-specific parts of the text report (:mod:`jaxdiff.evaluation.text`).

    Attributes:
      bound: ``(run, *, bound_samples) -> bound(params, key, tokens) -> nats [B]``: the
        process's negative log-likelihood bound per row (``bound_samples`` Monte Carlo
        terms where it is estimated).
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


def diffusion_sampler(sample_fn) -> Callable:
    """The ``make_sampler`` of a text diffusion process whose one sampler (``ancestral``) is
    ``sample_fn(key, denoise_fn, process, shape, *, num_steps, float64, inpaint_mask,
    inpaint_values)`` (:func:`jaxdiff.discrete.d3pm_sample`)."""

    def make_sampler(run, *, count: int, sampler: str, num_steps: int | None = None,
                     float64: bool = False, inpaint_mask=None, inpaint_values=None):
        del sampler   # the one sampler
        apply_fn, shape = run.apply_fn(), text_sample_shape(run, count, inpaint_values)

        @jax.jit
        def sample(key, params):
            return sample_fn(key, bind(apply_fn, params), run.process, shape,
                             num_steps=num_steps, float64=float64, inpaint_mask=inpaint_mask,
                             inpaint_values=inpaint_values)

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


def diffusion_loss_fn(loss, run, *, train: bool) -> Callable:
    """``loss_fn(params, key, batch) -> [B]`` of a text diffusion whose loss is ``loss(key,
    denoise_fn, process, tokens)`` (:func:`jaxdiff.discrete.masked_diffusion_loss`,
    ``block_diffusion_loss``); ``train`` runs the network in train mode (dropout from a split
    of ``key``)."""
    apply_fn, process = run.apply_fn(train=train), run.process

    def loss_fn(params, key, batch):
        key_loss, key_dropout = jax.random.split(key)
        return loss(key_loss, text_denoiser(run, apply_fn, params, key_dropout), process,
                    batch["tokens"])

    return loss_fn


def diffusion_bound(elbo_fn) -> Callable:
    """``TextEvaluation.bound`` of a process whose bound estimator is ``elbo_fn(key,
    denoise_fn, process, tokens, *, num_samples)`` (:func:`jaxdiff.discrete.d3pm_elbo`,
    ``masked_elbo``)."""

    def make_bound(run, *, bound_samples: int):
        apply_fn = run.apply_fn()

        def bound(params, key, tokens):
            return elbo_fn(key, text_denoiser(run, apply_fn, params), run.process, tokens,
                           num_samples=bound_samples)

        return bound

    return make_bound


def _check_config(config) -> None:
    d = config.data
    if d.name not in data.TEXT_CORPUS_NAMES:
        raise config_error("data.name", f"process {config.diffusion.process!r} trains on a "
                                        f"character corpus, one of "
                                        f"{list(data.TEXT_CORPUS_NAMES)}; got {d.name!r}")
    if d.conditional:
        raise config_error("data.conditional", "text runs are unconditional")
    if d.latents != "cached":
        raise config_error("data.latents", f"is for latent image runs; got {d.latents!r}")
    if (d.path is not None) != (d.name == "text8"):
        raise config_error("data.path", f"is required for the 'text8' corpus and only for "
                                        f"it; got path={d.path!r} with name={d.name!r}")


def _load(config):
    d = config.data
    return (data.load_text_corpus(d.name, "train", path=d.path),
            data.chunk(data.load_text_corpus(d.name, "validation", path=d.path), d.seq_len))


def _model_fields(config, dataset) -> dict:
    del dataset
    return {"max_length": config.data.seq_len}


def _train_batches(run, start_step: int):
    t = run.config.train
    crops = data.random_crops(run.dataset, batch_size=t.batch_size,
                              seq_len=run.config.data.seq_len, seed=t.seed,
                              start_step=start_step)
    return ({"tokens": tokens} for tokens in crops)


def _eval_batches(run) -> list:
    """The first ``train.eval_batches x train.batch_size`` validation windows, in order
    (this process's rows of each batch)."""
    t = run.config.train
    rows = run.eval_dataset
    needed = t.eval_batches * t.batch_size
    if len(rows) < needed:
        raise ValueError(f"train.eval_batches x train.batch_size = {needed} held-out "
                         f"sequences, but the validation split has only {len(rows)} of "
                         f"data.seq_len={run.config.data.seq_len} characters")
    process, count = jax.process_index(), jax.process_count()
    local = t.batch_size // count
    return [{"tokens": rows[i * t.batch_size + process * local:
                            i * t.batch_size + (process + 1) * local]}
            for i in range(t.eval_batches)]


def _held_out_metrics(run, eval_loss: float) -> dict:
    """``eval_bpc``: the held-out bound (nats per sequence) in bits per character."""
    return {"eval_bpc": bits_per_unit(eval_loss, run.config.data.seq_len)}


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


def template_inpainting(template: str, *, mask_length, count: int):
    """``(inpaint_mask, inpaint_values)``, ``[count, L]``, of a text template such as
    ``"the [MASK] sat on the [MASK]"`` with each ``[MASK]`` a span of ``mask_length``
    unknown characters (an int, or one per span): what a text task's sampler takes to fill
    the spans (``experiments/sample.py --inpaint``)."""
    ids = discrete.expand_template(template, mask_length, TOKENIZER)
    if ids.size == 0 or not np.any(ids == TOKENIZER.mask_id):
        raise ValueError(f"template must hold text and at least one [MASK], got {template!r}")
    known = np.repeat((ids != TOKENIZER.mask_id)[None], count, axis=0)
    return known, np.repeat(np.where(ids == TOKENIZER.mask_id, 0, ids)[None], count, axis=0)


def _save_samples(run, path_stem, samples):
    path = path_stem.with_suffix(".txt")
    path.write_text("".join(TOKENIZER.decode(row) + "\n" for row in np.asarray(samples)))
    return path


TEXT = Modality(name="text", networks=(TextTransformerConfig,), check_config=_check_config,
                load=_load,
                model_fields=_model_fields, train_batches=_train_batches,
                eval_batches=_eval_batches, held_out_metrics=_held_out_metrics,
                sample_shape=text_sample_shape, save_samples=_save_samples)
