r"""``masked``: continuous-time masked diffusion on characters (MDLM, Sahoo et al. 2024;
MD4, Shi et al. 2024).

Process: :func:`jaxdiff.discrete.masked_process` (``loglinear`` by default, or ``cosine``)
with ``[MASK]`` = 27, V = 28; ``diffusion.num_steps`` is not used (continuous time).
Objective and held-out bound: the negative ELBO
(:func:`jaxdiff.discrete.masked_diffusion_loss`), an unbiased bound estimate per sequence.
Sampler: ``ancestral`` (:func:`jaxdiff.discrete.masked_sample`, ``num_steps`` parallel
unmasking steps).
"""


from jaxdiff import discrete
from jaxdiff._validation import config_error
from jaxdiff.metrics.diagnostics import masked_token_accuracy
from jaxdiff.tasks import text
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.text import TOKENIZER

SCHEDULES = ("loglinear", "cosine")


def _check_config(config) -> None:
    if config.train.sample_steps is None:
        raise config_error("train.sample_steps", "masked diffusion samples in K unmasking "
                                                 "steps: set it to K >= 1, got None")


MASKED = Task(
    name="masked", modality=text.TEXT, schedules=SCHEDULES, samplers=("ancestral",),
    sampler_options=text.DIFFUSION_SAMPLER_OPTIONS,
    check_config=_check_config,
    build_process=lambda config, schedule: discrete.masked_process(
        schedule, vocab_size=TOKENIZER.vocab_size, mask_id=TOKENIZER.mask_id),
    model_fields=lambda config: {"vocab_size": TOKENIZER.vocab_size, "causal": False,
                                 "time_conditioning": True},
    objective=lambda run: text.diffusion_loss_fn(discrete.masked_diffusion_loss, run, train=True),
    held_out=lambda run: text.diffusion_loss_fn(discrete.masked_diffusion_loss, run, train=False),
    make_sampler=text.diffusion_sampler(discrete.masked_sample),
    evaluation=text.TextEvaluation(bound=text.diffusion_bound(discrete.masked_elbo), exact=False,
                              token_accuracy=masked_token_accuracy,
                              describe=lambda n: f"masked ELBO, {n} stratified times"))
