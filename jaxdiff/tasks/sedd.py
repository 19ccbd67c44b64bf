r"""``sedd_absorbing`` and ``sedd_uniform``: score entropy discrete diffusion on characters
(SEDD, Lou et al. 2024).

Process: :func:`jaxdiff.discrete.sedd_process`, the absorbing graph (``[MASK]`` = 27, V = 28,
log-linear noise with :math:`\alpha_t = 1 - t`, ``diffusion.schedule`` ``loglinear``) or the
uniform graph over the 27 characters (geometric noise 1e-4 .. 20, ``geometric``): each graph
has its one schedule. The network's output is the log
concrete score (SEDD's scaling for absorbing). Objective: the denoising score entropy at one
time per sequence (:func:`jaxdiff.discrete.sedd_loss`); held out, the same plus the prior
term. Sampler: ``tau_leaping`` (SEDD's Tweedie tau-leaping, :func:`jaxdiff.discrete.sedd_sample`,
``train.sample_steps`` steps). Both graphs are one factory, :func:`sedd_task`.
"""

import jax

from jaxdiff import discrete
from jaxdiff._validation import config_error
from jaxdiff.models.functional import bind
from jaxdiff.tasks import text
from jaxdiff.tasks.base import Task


def _check_config(config) -> None:
    text.check_unconditional(config, config.diffusion.process)
    if config.train.sample_steps is None:
        raise config_error("train.sample_steps", "SEDD samples in K tau-leaping steps: set it "
                                                 "to K >= 1, got None")


def _held_out(run):
    """The loss plus the prior term: an unbiased bound estimate per sequence."""
    loss_fn = text.diffusion_loss_fn(discrete.sedd_loss, run, train=False)
    return lambda params, key, batch: (loss_fn(params, key, batch)
                                       + discrete.sedd_prior_kl(run.process, batch["tokens"]))


def _make_sampler(run, *, count: int, sampler: str, num_steps: int | None = None,
                  float64: bool = False, inpaint_mask=None, inpaint_values=None):
    del sampler   # the one sampler
    apply_fn, shape = run.apply_fn(), text.text_sample_shape(run, count, inpaint_values)

    @jax.jit
    def sample(key, params):
        return discrete.sedd_sample(key, bind(apply_fn, params), run.process, shape,
                                    num_steps=num_steps, float64=float64,
                                    inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)

    return sample


def sedd_task(graph: str, schedule: str) -> Task:
    """The SEDD task of ``graph`` (``absorbing`` or ``uniform``) with its one noise
    ``schedule`` (``loglinear`` or ``geometric``: the graph fixes it)."""
    absorbing = graph == "absorbing"
    return Task(
        name=f"sedd_{graph}", modality=text.TEXT, schedules=(schedule,),
        samplers=("tau_leaping",),
        sampler_options=text.DIFFUSION_SAMPLER_OPTIONS, check_config=_check_config,
        build_process=lambda config, schedule: discrete.sedd_process(
            graph, **text.vocabulary(config, absorbing=absorbing)),
        model_fields=lambda config: {"vocab_size": text.vocabulary(
                                         config, absorbing=absorbing)["vocab_size"],
                                     "causal": False,
                                     "time_conditioning": True},
        objective=lambda run: text.diffusion_loss_fn(discrete.sedd_loss, run, train=True),
        held_out=_held_out, make_sampler=_make_sampler,
        evaluation=text.TextEvaluation(bound=text.diffusion_bound(discrete.sedd_elbo),
                                       exact=False, token_accuracy=None,
                                       describe=lambda n: f"SEDD score entropy, {n} "
                                                          f"stratified times, + prior"))


SEDD_ABSORBING = sedd_task("absorbing", "loglinear")
SEDD_UNIFORM = sedd_task("uniform", "geometric")
