r"""``masked``: continuous-time masked diffusion on characters (MDLM, Sahoo et al. 2024;
MD4, Shi et al. 2024).

Process: :func:`jaxdiff.discrete.masked_process` (``loglinear`` by default, or ``cosine``)
with ``[MASK]`` = 27, V = 28; ``diffusion.num_steps`` is not used (continuous time). The
denoiser is time-conditioned unless ``diffusion.time_conditioning`` is False (MDLM trains
without: the masked positions tell the time). Objective and held-out bound: the negative
ELBO (:func:`jaxdiff.discrete.masked_diffusion_loss`), an unbiased bound estimate per
sequence. Samplers (:mod:`jaxdiff.discrete.unmasking`): ``ancestral`` (MDLM / MD4's
``num_steps`` parallel unmasking steps; ``cache=True``, MDLM's cached sampler, needs a
denoiser without time conditioning), ``remdm`` (ReMDM remasking, ``remasking`` schedule and
``eta``) and ``confidence`` (LLaDA's confidence-ordered unmasking, ``order``); all take
``temperature``, ``top_p``, ``float64`` and inpainting, and ``ancestral`` / ``confidence``
semi-autoregressive ``block_length``; a label-conditioned run's (``data.conditional``)
also ``classes`` and ``guidance_scale`` (:mod:`jaxdiff.tasks.text`).
"""

import jax

from jaxdiff import discrete
from jaxdiff._validation import config_error
from jaxdiff.metrics.diagnostics import masked_token_accuracy
from jaxdiff.tasks import text
from jaxdiff.tasks.base import Task

SCHEDULES = ("loglinear", "cosine")
SHARED_OPTIONS = ("num_steps", "temperature", "top_p", "cache", "float64", "inpaint_mask",
                  "inpaint_values") + text.GUIDED_SAMPLER_OPTIONS
SAMPLERS = {   # name -> (sampler, the options it takes beyond SHARED_OPTIONS)
    "ancestral": (discrete.masked_sample, ("block_length",)),
    "remdm": (discrete.remdm_sample, ("remasking", "eta")),
    "confidence": (discrete.confidence_sample, ("order", "block_length")),
}


def _check_config(config) -> None:
    if config.train.sample_steps is None:
        raise config_error("train.sample_steps", "masked diffusion samples in K unmasking "
                                                 "steps: set it to K >= 1, got None")
    if not isinstance(MASKED.setting(config, "time_conditioning"), bool):
        raise config_error("diffusion.time_conditioning", "must be True or False")


def _make_sampler(run, *, count: int, sampler: str, inpaint_values=None, classes=None,
                  guidance_scale=None, **options):
    sample_fn, own = SAMPLERS[sampler]
    foreign = sorted(set(options) - set(SHARED_OPTIONS) - set(own))
    if foreign:
        raise ValueError(f"sampler {sampler!r} does not take the option(s) {foreign}; it "
                         f"takes {sorted(SHARED_OPTIONS + own)}")
    if options.get("cache") and run.model_config.time_conditioning:
        raise ValueError("cache=True reuses a prediction across times, exact only for a "
                         "denoiser without time conditioning: train with "
                         "diffusion.time_conditioning=False")
    if "remasking" in options:
        options["schedule"] = options.pop("remasking")
    shape = text.text_sample_shape(run, count, inpaint_values)
    cond, null = text.sampling_conditions(run, count, classes=classes,
                                          guidance_scale=guidance_scale)

    @jax.jit
    def sample(key, params):
        denoise_fn = text.guided_text_denoiser(run, params, cond, null, guidance_scale)
        return sample_fn(key, denoise_fn, run.process, shape, inpaint_values=inpaint_values,
                         **options)

    return sample


MASKED = Task(
    name="masked", modality=text.TEXT, schedules=SCHEDULES, samplers=tuple(SAMPLERS),
    sampler_options=tuple(dict.fromkeys(SHARED_OPTIONS + sum((v[1] for v in SAMPLERS.values()),
                                                             ()))),
    check_config=_check_config,
    build_process=lambda config, schedule: discrete.masked_process(
        schedule, **text.vocabulary(config, absorbing=True)),
    model_fields=lambda config: {"vocab_size": text.vocabulary(config,
                                                              absorbing=True)["vocab_size"],
                                 "causal": False,
                                 "time_conditioning": MASKED.setting(config,
                                                                     "time_conditioning")},
    objective=lambda run: text.diffusion_loss_fn(discrete.masked_diffusion_loss, run,
                                                 train=True),
    held_out=lambda run: text.diffusion_loss_fn(discrete.masked_diffusion_loss, run,
                                                train=False),
    make_sampler=_make_sampler,
    evaluation=text.TextEvaluation(bound=text.diffusion_bound(discrete.masked_elbo), exact=False,
                                   token_accuracy=masked_token_accuracy,
                                   describe=lambda n: f"masked ELBO, {n} stratified times"),
    settings={"time_conditioning": True, "label_dropout": text.LABEL_DROPOUT})
