"""Loss functions ``loss_fn(params, key, batch) -> [B]`` that plug a model into the math.

Training objectives (what the optimiser minimises) and, for text, the held-out bounds the
loop reports: an unbiased estimate of each model's negative log-likelihood bound per
sequence, in nats, so ``eval_bpc = mean / (L ln 2)`` is comparable across processes.
"""

import jax

from jaxdiff import autoregressive, discrete, gaussian
from jaxdiff.models.conditioning import drop_labels
from jaxdiff.models.functional import bind

# The autoregressive baseline reads ``[BOS] + x[:-1]``, BOS being the character
# tokenizer's [MASK] id, so it shares V = 28 with the diffusion models.
BOS_ID = discrete.CharTokenizer().mask_id


def gaussian_objective(apply_fn, schedule: gaussian.Schedule, *, prediction: str,
                       weighting: str = "uniform", learned_variance: bool = False,
                       num_classes: int | None = None, label_dropout: float = 0.0):
    """The Gaussian-diffusion loss of ``jaxdiff.gaussian.loss`` for ``apply_fn(params, x_t,
    t, cond, key)``, on ``batch["image"]``; with ``num_classes`` the labels condition the
    model and are replaced by the null class at rate ``label_dropout`` (classifier-free
    guidance training)."""

    def loss_fn(params, key, batch):
        key_loss, key_dropout, key_labels = jax.random.split(key, 3)
        cond = None
        if num_classes is not None:
            cond = drop_labels(key_labels, batch["label"], num_classes=num_classes,
                               rate=label_dropout)
        return gaussian.loss(key_loss, bind(apply_fn, params, key_dropout), schedule,
                             batch["image"], prediction=prediction, cond=cond,
                             weighting=weighting, learned_variance=learned_variance)

    return loss_fn


def d3pm_objective(apply_fn, process: discrete.D3PMProcess, *, hybrid_coeff: float):
    r"""D3PM's hybrid loss :math:`L_t + \lambda\,\mathrm{CE}` (``discrete.d3pm_loss``) on
    ``batch["tokens"]``."""

    def loss_fn(params, key, batch):
        key_loss, key_dropout = jax.random.split(key)
        return discrete.d3pm_loss(key_loss, bind(apply_fn, params, key_dropout), process,
                                  batch["tokens"], hybrid_coeff=hybrid_coeff)

    return loss_fn


def d3pm_bound_objective(apply_fn, process: discrete.D3PMProcess):
    r"""An unbiased one-term estimate of D3PM's bound per sequence, in nats:

    .. math:: \hat L_{vb} = T\,L_t + L_T,\qquad t \sim \mathcal U\{0, \dots, T-1\}

    since :math:`L_{vb} = L_T + \sum_{t} L_t` (``discrete.d3pm_elbo`` sums every term)."""

    def loss_fn(params, key, batch):
        tokens = batch["tokens"]
        term = discrete.d3pm_loss(key, bind(apply_fn, params), process, tokens,
                                  hybrid_coeff=0.0)
        return process.num_steps * term + discrete.d3pm_prior_kl(process, tokens)

    return loss_fn


def masked_objective(apply_fn, process: discrete.MaskedProcess):
    """The masked-diffusion negative ELBO (``discrete.masked_diffusion_loss``) on
    ``batch["tokens"]``: the training loss and an unbiased bound estimate at once."""

    def loss_fn(params, key, batch):
        key_loss, key_dropout = jax.random.split(key)
        return discrete.masked_diffusion_loss(key_loss, bind(apply_fn, params, key_dropout),
                                              process, batch["tokens"])

    return loss_fn


def autoregressive_objective(apply_fn):
    r"""The exact negative log-likelihood :math:`-\log p(x)` per sequence
    (``autoregressive.sequence_nll``) of a causal model on ``batch["tokens"]``."""

    def loss_fn(params, key, batch):
        def logits_fn(inputs):
            return apply_fn(params, inputs, None, None, key)

        return autoregressive.sequence_nll(logits_fn, batch["tokens"], bos_id=BOS_ID)

    return loss_fn
