r"""``absorbing`` and ``uniform``: D3PM on characters (Austin et al. 2021).

Process: :func:`jaxdiff.discrete.d3pm_process` with ``diffusion.num_steps`` steps; the
absorbing transition (``[MASK]`` = 27, V = 28) with D3PM's 1/(T-t+1) schedule by default
(``reciprocal``) or ``mutual_information``; the uniform transition over the 27 characters
(V = 27) with the cosine schedule by default. Objective: D3PM's hybrid loss
:math:`L_t + \lambda\,\mathrm{CE}` (``diffusion.hybrid_coeff``). Held out: the unbiased
one-term bound estimate :math:`T L_t + L_T`. Sampler: ``ancestral``
(:func:`jaxdiff.discrete.d3pm_sample`, T steps or a strided subset). Both transitions are
one factory, :func:`d3pm_task`: they differ only in the transition and its vocabulary.
"""

import jax

from jaxdiff import discrete
from jaxdiff._validation import config_error
from jaxdiff.metrics.diagnostics import d3pm_token_accuracy
from jaxdiff.models.functional import bind
from jaxdiff.tasks import text
from jaxdiff.tasks.base import Task

NUM_STEPS = 1000
"""D3PM's T when ``diffusion.num_steps`` is None (Austin et al. 2021 train with T = 1000)."""
HYBRID_COEFF = 0.01
r"""D3PM's :math:`\lambda` when ``diffusion.hybrid_coeff`` is None (the paper's 0.01)."""


def d3pm_bound_objective(apply_fn, process: discrete.D3PMProcess,
                         batch_cond=lambda batch: None):
    r"""An unbiased one-term estimate of D3PM's bound per sequence, in nats:

    .. math:: \hat L_{vb} = T\,L_t + L_T,\qquad t \sim \mathcal U\{0, \dots, T-1\}

    since :math:`L_{vb} = L_T + \sum_{t} L_t` (``discrete.d3pm_elbo`` sums every term);
    ``batch_cond(batch)`` is the network's condition (None: unconditional)."""

    def loss_fn(params, key, batch):
        tokens = batch["tokens"]
        term = discrete.d3pm_loss(key, bind(apply_fn, params), process, tokens,
                                  hybrid_coeff=0.0, cond=batch_cond(batch))
        return process.num_steps * term + discrete.d3pm_prior_kl(process, tokens)

    return loss_fn


def _held_out(run):
    """:func:`d3pm_bound_objective`, conditioned on the batch's labels in a conditional run."""
    return d3pm_bound_objective(run.apply_fn(), run.process,
                                batch_cond=lambda batch: text.batch_condition(run, None, batch,
                                                                              train=False))


def _objective(run):
    apply_fn, process = run.apply_fn(train=True), run.process
    hybrid_coeff = run.task.setting(run.config, "hybrid_coeff")

    def loss_fn(params, key, batch):
        key_loss, key_dropout, key_labels = jax.random.split(key, 3)
        return discrete.d3pm_loss(key_loss, bind(apply_fn, params, key_dropout), process,
                                  batch["tokens"], hybrid_coeff=hybrid_coeff,
                                  cond=text.batch_condition(run, key_labels, batch, train=True))

    return loss_fn


def d3pm_task(transition: str, schedules: tuple[str, ...]) -> Task:
    """The D3PM task of ``transition`` (``absorbing`` or ``uniform``)."""
    absorbing = transition == "absorbing"

    def build_process(config, schedule: str):
        return discrete.d3pm_process(transition, num_steps=task.setting(config, "num_steps"),
                                     schedule=schedule,
                                     **text.vocabulary(config, absorbing=absorbing))

    def check_config(config):
        hybrid_coeff, T = task.setting(config, "hybrid_coeff"), task.setting(config, "num_steps")
        if hybrid_coeff < 0:
            raise config_error("diffusion.hybrid_coeff", f"must be >= 0, got {hybrid_coeff}")
        if T < 1:
            raise config_error("diffusion.num_steps", f"must be >= 1, got {T}")
        steps = config.train.sample_steps
        if steps is not None and steps > T:
            raise config_error("train.sample_steps", f"D3PM samples at most its T = "
                                                     f"diffusion.num_steps = {T} steps, got "
                                                     f"{steps}")

    task = Task(
        name=transition, modality=text.TEXT, schedules=schedules, samplers=("ancestral",),
        sampler_options=text.DIFFUSION_SAMPLER_OPTIONS + text.GUIDED_SAMPLER_OPTIONS,
        check_config=check_config, build_process=build_process,
        model_fields=lambda config: {"vocab_size": text.vocabulary(
                                         config, absorbing=absorbing)["vocab_size"],
                                     "causal": False,
                                     "time_conditioning": True},
        objective=_objective,
        held_out=_held_out,
        make_sampler=text.diffusion_sampler(discrete.d3pm_sample),
        evaluation=text.TextEvaluation(
            bound=text.diffusion_bound(discrete.d3pm_elbo), exact=False,
            token_accuracy=d3pm_token_accuracy,
            describe=lambda n: f"D3PM L_vb, {n} stratified steps of T"),
        settings={"num_steps": NUM_STEPS, "hybrid_coeff": HYBRID_COEFF,
                  "label_dropout": text.LABEL_DROPOUT})
    return task


ABSORBING = d3pm_task("absorbing", ("reciprocal", "mutual_information"))
UNIFORM = d3pm_task("uniform", ("cosine", "reciprocal", "mutual_information"))
