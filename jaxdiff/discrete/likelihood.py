r"""Likelihood bounds for discrete diffusion, and their units.

Both evaluators return per-example upper bounds on :math:`-\log p_\theta(x_0)` in nats, ``[B]``
(sums over positions). Convert with :func:`jaxdiff.units.bits_per_unit` (bits per token; per
character for a character vocabulary) and :func:`perplexity_bound`:

.. math:: \text{bpt} = \frac{\mathcal L}{N \ln 2}, \qquad
    \text{PPL} \le \exp\Big(\frac{\sum_b \mathcal L_b}{\sum_b N_b}\Big),

with :math:`N` the number of tokens per example.
"""

import jax
import jax.numpy as jnp

from jaxdiff._validation import call_denoiser, check_cond, check_int, check_tokens
from jaxdiff.discrete.losses import d3pm_prior_kl, d3pm_vb_terms, masked_elbo_terms
from jaxdiff.discrete.masking import check_masked_process, masked_q_sample
from jaxdiff.discrete.transitions import D3PMProcess, check_d3pm_process, q_sample


def d3pm_elbo(key, denoise_fn, process: D3PMProcess, x0, *, cond=None,
              num_samples: int | None = None) -> jax.Array:
    r"""D3PM's bound :math:`L_{vb} = L_T + \sum_{t=0}^{T-1} L_t` per example, in nats.

    With ``num_samples=None`` every term is evaluated (one ``lax.scan`` over the ``T``
    indices, so ``T`` calls of ``denoise_fn``). With ``num_samples = K`` the sum is
    estimated by stratified Monte Carlo over the steps (``K`` calls):

    .. math:: L_{vb} \approx L_T + \frac{T}{K} \sum_{k=0}^{K-1} L_{t_k},\qquad
        t_k = \Big\lfloor \frac{(k + u) T}{K} \Big\rfloor,\ u \sim \mathcal U[0, 1)

    (one :math:`u` per example; each :math:`t_k` is uniform on its stratum of
    :math:`T/K` steps when ``K`` divides ``T``, so the estimate is unbiased). Term ``t``
    draws :math:`x_t \sim q(x_t | x_0)` with key ``fold_in(key, t)`` (stratum ``k``
    with ``fold_in(key, k)``; :math:`u` with ``fold_in(key, T)``), so ``K = T`` gives
    the full sum exactly.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> x0 logits [B, L, V]``.
      process: the forward process.
      x0: clean ids ``int [B, L]``.
      cond: conditioning passed to ``denoise_fn`` (batch first).
      num_samples: ``K``, a divisor of ``T``; None evaluates all ``T`` terms.

    Returns:
      ``float32 [B]`` nats.
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    batch = x0.shape[0]
    check_cond(cond, batch)
    num_train = process.num_steps
    num_samples = num_train if num_samples is None else check_int("num_samples", num_samples)
    if num_train % num_samples:
        raise ValueError(f"num_samples must divide the process's T = {num_train}, "
                         f"got {num_samples}")
    stride = num_train // num_samples
    offset = jax.random.randint(jax.random.fold_in(key, num_train), (batch,), 0, stride,
                                dtype=jnp.int32)

    def body(total, k):
        t = k * stride + offset
        x_t = q_sample(jax.random.fold_in(key, k), process, x0, t)
        logits = call_denoiser(denoise_fn, x_t, t, cond, process.vocab_size)
        return total + d3pm_vb_terms(process, logits, x0, x_t, t), None

    terms, _ = jax.lax.scan(body, jnp.zeros((batch,), jnp.float32),
                            jnp.arange(num_samples, dtype=jnp.int32))
    return stride * terms + d3pm_prior_kl(process, x0)


def masked_elbo(key, denoise_fn, process, x0, *, num_samples: int = 128,
                cond=None) -> jax.Array:
    r"""The masked-diffusion bound per example, in nats, by stratified Monte Carlo over time.

    .. math:: \mathcal L \approx \frac1N \sum_{j=0}^{N-1} \frac{-\alpha_{t_j}'}{1-\alpha_{t_j}}
        \sum_{\ell:\, z^\ell_{t_j} = m} -\log\tilde p_\theta(x_0^\ell | z_{t_j}),
        \qquad t_j = 1 - \frac{j + u}{N},\ u \sim \mathcal U[0, 1)

    (one :math:`u` per example, a fresh :math:`z_{t_j}` per stratum; unbiased). One
    ``lax.scan`` over the ``N`` strata.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(z_t, t, cond) -> x0 logits [B, L, V]``, ``t`` float32 [B].
      process: a :class:`~jaxdiff.discrete.masking.MaskedProcess`.
      x0: clean ids ``int [B, L]``.
      num_samples: :math:`N`, the number of strata (denoiser calls).
      cond: conditioning passed to ``denoise_fn`` (batch first).

    Returns:
      ``float32 [B]`` nats.
    """
    check_masked_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    num_samples = check_int("num_samples", num_samples)
    batch = x0.shape[0]
    check_cond(cond, batch)
    key_u, key_z = jax.random.split(key)
    u = jax.random.uniform(key_u, (batch,), jnp.float32)

    def body(total, j):
        # (N - 1 - j + (1 - u)) / N, written so that float32 rounding never gives t = 0.
        t = ((num_samples - 1 - j).astype(jnp.float32) + (1.0 - u)) / num_samples
        z_t = masked_q_sample(jax.random.fold_in(key_z, j), process, x0, t)
        logits = call_denoiser(denoise_fn, z_t, t, cond, process.vocab_size)
        return total + masked_elbo_terms(process, logits, x0, z_t, t), None

    total, _ = jax.lax.scan(body, jnp.zeros((batch,), jnp.float32),
                            jnp.arange(num_samples, dtype=jnp.int32))
    return total / num_samples


def perplexity_bound(nats, num_tokens) -> jax.Array:
    r"""The perplexity bound of a set of examples:
    :math:`\exp(\sum_b \mathcal L_b / \sum_b N_b)`.

    Args:
      nats: per-example bounds ``[B]``, in nats.
      num_tokens: tokens per example (int, or ``[B]`` for ragged examples).
    """
    nats = jnp.asarray(nats)
    total_tokens = jnp.sum(jnp.broadcast_to(jnp.asarray(num_tokens), nats.shape))
    return jnp.exp(jnp.sum(nats) / total_tokens)
