r"""Continuous-time masked (absorbing) diffusion: MDLM (Sahoo et al. 2024) and MD4 (Shi et al.
2024).

Each token is independently replaced by ``[MASK]`` (id :math:`m`) by time :math:`t \in [0, 1]`:

.. math:: q(z_t | x) = \mathrm{Cat}\big(\alpha_t\, e_x + (1 - \alpha_t)\, e_m\big),
    \qquad \alpha_0 = 1,\ \alpha_1 = 0,

and the negative ELBO is a weighted cross-entropy on the masked positions (MD4;
MDLM):

.. math:: -\log p(x) \le \int_0^1 \frac{-\alpha_t'}{1 - \alpha_t}\,
    \mathbb E_{q(z_t|x)}\Big[\sum_{\ell:\, z_t^\ell = m} -\log \tilde p_\theta(x^\ell | z_t)\Big]
    \mathrm dt.

Schedules (``schedule=``), written with the masking probability :math:`1 - \alpha_t`:

- ``loglinear``: :math:`1 - \alpha_t = t`, weight :math:`1/t` (MDLM's log-linear
  :math:`\sigma(t) = -\log(1 - t)` without its :math:`\epsilon`; MD4's linear).
- ``cosine``: :math:`1 - \alpha_t = \cos(\tfrac\pi2 (1 - t)) = \sin(\tfrac\pi2 t)`, weight
  :math:`\tfrac\pi2 / \tan(\tfrac\pi2 t)` (MD4).

Both reach :math:`\alpha_1 = 0` exactly, so the prior term vanishes.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_choice, check_int, check_times, check_tokens

MASKING_SCHEDULES = ("loglinear", "cosine")


@functools.partial(jax.tree_util.register_dataclass, data_fields=[],
                   meta_fields=["schedule", "vocab_size", "mask_id"])
@dataclasses.dataclass(frozen=True)
class MaskedProcess:
    """A continuous-time masked diffusion; every field is static (a leafless pytree).

    Attributes:
      schedule: ``"loglinear"`` or ``"cosine"``.
      vocab_size: ``V``, ``[MASK]`` included.
      mask_id: the ``[MASK]`` id.
    """

    schedule: str
    vocab_size: int
    mask_id: int


def masked_process(schedule: str = "loglinear", *, vocab_size: int,
                   mask_id: int) -> MaskedProcess:
    """Builds a :class:`MaskedProcess`.

    Args:
      schedule: ``loglinear`` or ``cosine``.
      vocab_size: ``V``, ``[MASK]`` included.
      mask_id: the ``[MASK]`` id in ``[0, V)``.
    """
    check_choice("schedule", schedule, MASKING_SCHEDULES)
    vocab_size = check_int("vocab_size", vocab_size, 2)
    mask_id = check_int("mask_id", mask_id, 0)
    if mask_id >= vocab_size:
        raise ValueError(f"mask_id must lie in [0, vocab_size={vocab_size}), got {mask_id}")
    return MaskedProcess(schedule=schedule, vocab_size=vocab_size, mask_id=mask_id)


def check_masked_process(process) -> None:
    """Raises ``TypeError`` unless ``process`` is a :class:`MaskedProcess`."""
    if not isinstance(process, MaskedProcess):
        raise TypeError(f"process must be a MaskedProcess (see masked_process), "
                        f"got {type(process).__name__}")


def mask_probability(process: MaskedProcess, t) -> jax.Array:
    r""":math:`1 - \alpha_t`, the probability that a token is masked at time ``t``."""
    if process.schedule == "loglinear":
        return t
    return jnp.sin(0.5 * jnp.pi * t)


def masking_weight(process: MaskedProcess, t) -> jax.Array:
    r"""The ELBO weight :math:`-\alpha_t' / (1 - \alpha_t)`: :math:`1/t` (loglinear) or
    :math:`\tfrac\pi2 / \tan(\tfrac\pi2 t)` (cosine)."""
    if process.schedule == "loglinear":
        return 1.0 / t
    return 0.5 * jnp.pi / jnp.tan(0.5 * jnp.pi * t)


def masked_q_sample(key, process: MaskedProcess, x0, t) -> jax.Array:
    r"""Draws :math:`z_t \sim q(z_t | x)`: each token becomes ``[MASK]`` with probability
    :math:`1 - \alpha_t`.

    Args:
      key: PRNG key.
      process: the masked process.
      x0: clean ids ``int [B, L]`` (no ``[MASK]``).
      t: ``float32 [B]`` times in ``[0, 1]``.

    Returns:
      ``int32 [B, L]``.
    """
    check_masked_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_times("t", t, x0.shape[0])
    masked = jax.random.uniform(key, x0.shape) < mask_probability(process, t)[:, None]
    return jnp.where(masked, process.mask_id, x0).astype(jnp.int32)


def unmasking_log_probs(log_p_x0, stay_masked, mask_id: int) -> jax.Array:
    r"""The reverse step of a masked position from :math:`t` to :math:`s < t` (MD4, MDLM):

    .. math:: \mathrm{Cat}\Big(\big(1 - r\big)\,\tilde p_\theta(\cdot | z_t)
        + r\, e_m\Big),\qquad r = \frac{1 - \alpha_s}{1 - \alpha_t},

    as log-probabilities ``[..., V]``: ``log_p_x0`` (normalised over the ids other than
    ``mask_id``) plus :math:`\log(1 - r)`, and :math:`\log r` at ``mask_id``.
    ``stay_masked`` is :math:`r`, a scalar or broadcastable to ``[..., 1]`` (0 at
    :math:`s = 0`: every token filled).
    """
    is_mask = jnp.arange(log_p_x0.shape[-1]) == mask_id
    return jnp.where(is_mask, jnp.log(stay_masked), log_p_x0 + jnp.log1p(-stay_masked))
