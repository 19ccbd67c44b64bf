r"""``block``: block diffusion on characters (BD3-LM, Arriola et al. 2025).

Process: :func:`jaxdiff.discrete.block_process`, masked diffusion (``loglinear`` by default,
or ``cosine``; ``[MASK]`` = 27, V = 28) within blocks of ``diffusion.block_size`` tokens
(default 4), autoregressive across them. The network is the text transformer with
block-causal attention and no time conditioning (BD3-LM's), trained on BD3-LM's two-stream
input. Objective and held-out bound: the block bound
(:func:`jaxdiff.discrete.block_diffusion_loss`, one time per block), an unbiased estimate
per sequence; ``block_size=1`` is the autoregressive NLL, ``block_size=data.seq_len``
masked diffusion's ELBO. Samplers: ``cached`` (default; block by block with the KV cache of
the finished blocks, ``TextTransformer.decode_block``) and ``uncached`` (every step reruns
the whole sequence); both give the same tokens for a key, and take ``stop_id`` (generation
ends once every sequence has that token). ``train.sample_steps`` is the number of unmasking
steps per block.
"""

import functools

import jax

from jaxdiff import discrete
from jaxdiff._validation import config_error
from jaxdiff.tasks import text
from jaxdiff.tasks.base import Task

SCHEDULES = ("loglinear", "cosine")
BLOCK_SIZE = 4
"""``diffusion.block_size`` when None: BD3-LM's headline LM1B block (28.23 PPL)."""
SAMPLER_OPTIONS = ("num_steps", "temperature", "top_p", "stop_id", "float64", "inpaint_mask",
                   "inpaint_values") + text.GUIDED_SAMPLER_OPTIONS


def _check_config(config) -> None:
    block_size = BLOCK.setting(config, "block_size")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise config_error("diffusion.block_size", f"must be an int >= 1, got {block_size!r}")
    if config.data.seq_len % block_size:
        raise config_error("diffusion.block_size", f"must divide data.seq_len = "
                                                   f"{config.data.seq_len}, got {block_size}")
    if config.train.sample_steps is None:
        raise config_error("train.sample_steps", "block diffusion unmasks each block in K "
                                                 "steps: set it to K >= 1, got None")


def _make_sampler(run, *, count: int, sampler: str, num_steps: int | None = None,
                  temperature: float = 1.0, top_p: float = 1.0, stop_id: int | None = None,
                  float64: bool = False, inpaint_mask=None, inpaint_values=None, classes=None,
                  guidance_scale=None):
    shape = text.text_sample_shape(run, count, inpaint_values)
    options = dict(num_steps=num_steps, temperature=temperature, top_p=top_p, stop_id=stop_id,
                   float64=float64, inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)
    cond, null = text.sampling_conditions(run, count, classes=classes,
                                          guidance_scale=guidance_scale)
    rows = count if guidance_scale is None else 2 * count   # guidance: both branches' rows
    if sampler == "cached":
        init_cache, decode = run.decode_fns()

        def decoder(params):
            return functools.partial(decode, params), init_cache(params, rows)
    else:
        apply_fn = run.apply_fn()

        def decoder(params):
            return discrete.uncached_block_decoder(lambda x, c: apply_fn(params, x, None, c),
                                                   (rows, shape[1]),
                                                   mask_id=run.process.mask_id)

    @jax.jit
    def sample(key, params):
        decode_fn, state = decoder(params)
        decode_fn = discrete.guided_decoder(decode_fn, cond, guidance_scale=guidance_scale,
                                            null_cond=null)
        return discrete.block_sample(key, decode_fn, state, run.process, shape, **options)

    return sample


BLOCK = Task(
    name="block", modality=text.TEXT, schedules=SCHEDULES, samplers=("cached", "uncached"),
    sampler_options=SAMPLER_OPTIONS,
    check_config=_check_config,
    build_process=lambda config, schedule: discrete.block_process(
        schedule, **text.vocabulary(config, absorbing=True),
        block_size=BLOCK.setting(config, "block_size")),
    model_fields=lambda config: {"vocab_size": text.vocabulary(config,
                                                              absorbing=True)["vocab_size"],
                                 "causal": False,
                                 "time_conditioning": False,
                                 "block_size": BLOCK.setting(config, "block_size")},
    objective=lambda run: text.diffusion_loss_fn(discrete.block_diffusion_loss, run, train=True),
    held_out=lambda run: text.diffusion_loss_fn(discrete.block_diffusion_loss, run, train=False),
    make_sampler=_make_sampler,
    evaluation=text.TextEvaluation(bound=text.diffusion_bound(discrete.block_elbo), exact=False,
                                   token_accuracy=None,
                                   describe=lambda n: f"block bound, {n} stratified times "
                                                      f"per block"),
    settings={"block_size": BLOCK_SIZE, "label_dropout": text.LABEL_DROPOUT})
