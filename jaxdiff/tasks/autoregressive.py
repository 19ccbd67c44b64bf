r"""``autoregressive``: the causal baseline on the same text transformer.

No diffusion process (``diffusion.schedule`` must be None): the model reads
``[BOS] + x[:-1]`` with BOS the tokens' ``[MASK]`` id (so it shares V, 28 for characters,
with the diffusion models) and is trained and evaluated on its exact NLL
:math:`-\log p(x)` per sequence (:func:`jaxdiff.autoregressive.sequence_nll`). Samplers:
``cached`` (default; left to right with the key-value cache,
:func:`jaxdiff.autoregressive.ar_sample_cached`) and ``uncached`` (the whole prefix
recomputed each step, :func:`jaxdiff.autoregressive.ar_sample`); both give the same draws
for a key. Generation takes exactly ``data.seq_len`` steps, so ``train.sample_steps``
must be None.
"""

import functools

import jax

from jaxdiff import autoregressive
from jaxdiff._validation import config_error
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.text import (
    TEXT,
    TextEvaluation,
    check_unconditional,
    text_sample_shape,
    vocabulary,
)


def bos_id(config) -> int:
    """The baseline's beginning-of-sequence id: the tokens' ``[MASK]`` id, which text never
    holds."""
    return vocabulary(config, absorbing=True)["mask_id"]


def _check_config(config) -> None:
    check_unconditional(config, "autoregressive")
    if config.train.sample_steps is not None:
        raise config_error("train.sample_steps", "the autoregressive baseline samples left "
                                                 "to right in data.seq_len steps; set it to "
                                                 f"None, got {config.train.sample_steps}")


def _nll(run, *, train: bool = False):
    """``nll(params, key, tokens) -> [B]``, the exact NLL per sequence; ``train`` runs the
    model in train mode (dropout from ``key``)."""
    apply_fn = run.apply_fn(train=train)

    def nll(params, key, tokens):
        return autoregressive.sequence_nll(lambda x: apply_fn(params, x, None, None, key),
                                           tokens, bos_id=bos_id(run.config))

    return nll


def _loss_fn(run, *, train: bool):
    nll = _nll(run, train=train)
    return lambda params, key, batch: nll(params, key, batch["tokens"])


def _make_sampler(run, *, count: int, sampler: str, float64: bool = False,
                  inpaint_mask=None, inpaint_values=None):
    shape = text_sample_shape(run, count, inpaint_values)
    options = dict(bos_id=bos_id(run.config), float64=float64, inpaint_mask=inpaint_mask,
                   inpaint_values=inpaint_values)
    if sampler == "cached":
        init_cache, decode = run.decode_fns()

        @jax.jit
        def sample(key, params):
            return autoregressive.ar_sample_cached(
                key, functools.partial(decode, params), init_cache(params, count), shape,
                **options)

        return sample
    apply_fn = run.apply_fn()

    @jax.jit
    def sample(key, params):
        return autoregressive.ar_sample(key, lambda x: apply_fn(params, x, None), shape,
                                        **options)

    return sample


AUTOREGRESSIVE = Task(
    name="autoregressive", modality=TEXT, schedules=(), samplers=("cached", "uncached"),
    sampler_options=("float64", "inpaint_mask", "inpaint_values"),
    check_config=_check_config, build_process=lambda config, schedule: None,
    model_fields=lambda config: {"vocab_size": vocabulary(config, absorbing=True)["vocab_size"],
                                 "causal": True,
                                 "time_conditioning": False},
    objective=lambda run: _loss_fn(run, train=True),
    held_out=lambda run: _loss_fn(run, train=False), make_sampler=_make_sampler,
    evaluation=TextEvaluation(bound=lambda run, *, bound_samples: _nll(run), exact=True,
                              token_accuracy=None, describe=lambda n: "exact NLL"))
