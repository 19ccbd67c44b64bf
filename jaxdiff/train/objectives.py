"""Loss functions ``loss_fn(params, key, batch) -> [B]`` that plug a model into the math."""

import jax

from jaxdiff import gaussian
from jaxdiff.models.conditioning import drop_labels
from jaxdiff.models.functional import bind


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
