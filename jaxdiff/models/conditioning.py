"""Class labels with a reserved null class, for classifier-free guidance.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance": one network learns the
conditional and the unconditional model by replacing the label with a null label for a
fraction of the training examples. Here the null label of a ``num_classes``-way model is
the id ``num_classes``, so label embeddings have ``num_classes + 1`` rows.
"""

import jax
import jax.numpy as jnp

from jaxdiff.models import _checks
from jaxdiff.typing import Array, PRNGKey


def class_labels(cond: Array | None, *, num_classes: int | None, batch_size: int) -> Array | None:
    """Validates ``cond`` as ``int [B]`` labels; ``None`` becomes the null class.

    Returns ``None`` for an unconditional model (``num_classes is None``), which must
    receive ``cond=None``.
    """
    if num_classes is None:
        if cond is not None:
            raise ValueError("cond must be None: the model was built with num_classes=None")
        return None
    if cond is None:
        return jnp.full((batch_size,), num_classes, dtype=jnp.int32)
    _checks.check_integer("cond", cond, shape=(batch_size,))
    return cond


def drop_labels(key: PRNGKey, labels: Array, *, num_classes: int, rate: float) -> Array:
    """Replaces each label by the null class ``num_classes`` with probability ``rate``.

    Applied to the training labels, this trains the unconditional branch used by
    classifier-free guidance (Ho & Salimans 2022, Alg. 1; ``rate`` 0.1 in DiT).
    """
    _checks.check_integer("labels", labels, shape=(None,))
    _checks.check_rate("rate", rate)
    dropped = jax.random.bernoulli(key, rate, labels.shape)
    return jnp.where(dropped, jnp.asarray(num_classes, labels.dtype), labels)
