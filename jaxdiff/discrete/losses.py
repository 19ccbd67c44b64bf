r"""Losses for discrete diffusion: D3PM's :math:`L_{vb}` and hybrid :math:`L_\lambda`
(Austin et al. 2021), and the continuous-time masked-diffusion ELBO (MDLM, Sahoo et al. 2024;
MD4, Shi et al. 2024).

All values are per example, ``[B]``, in nats summed over the sequence's positions; see
:mod:`jaxdiff.discrete.likelihood` for bits per token and perplexity.

D3PM's bound, with the index convention of :mod:`jaxdiff.discrete.transitions` (index ``t``
holds the state after ``t + 1`` steps, the paper's :math:`x_{t+1}`):

.. math::
    L_{vb} = \underbrace{D_{KL}(q(x_T|x_0)\,\|\,p(x_T))}_{L_T}
    + \sum_{t=1}^{T-1} \underbrace{D_{KL}\big(q(x_t|x_{t+1},x_0)\,\|\,
      p_\theta(x_t|x_{t+1})\big)}_{L_t}
    \underbrace{- \log p_\theta(x_0 | x_1)}_{L_0},

where term :math:`L_t` is the one evaluated at index ``t``.
"""

import jax
import jax.numpy as jnp

from jaxdiff._validation import (
    call_denoiser,
    check_cond,
    check_logits,
    check_times,
    check_timesteps,
    check_tokens,
)
from jaxdiff.discrete.distributions import log_softmax_excluding
from jaxdiff.discrete.masking import check_masked_process, masked_q_sample, masking_weight
from jaxdiff.discrete.transitions import (
    D3PMProcess,
    check_d3pm_process,
    p_posterior_logits,
    q_posterior_logits,
    q_sample,
)


def _kl(log_q, log_p) -> jax.Array:
    """:math:`\\sum_v q_v (\\log q_v - \\log p_v)` over the last axis, with 0 log 0 = 0."""
    q = jnp.exp(log_q)
    safe = q > 0
    return jnp.sum(jnp.where(safe, q * (jnp.where(safe, log_q, 0.0) - jnp.where(safe, log_p, 0.0)),
                             0.0), axis=-1)


def _gather(log_probs, ids) -> jax.Array:
    """``log_probs[b, l, ids[b, l]]``."""
    return jnp.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]


def d3pm_vb_terms(process: D3PMProcess, x0_logits, x0, x_t, t) -> jax.Array:
    r"""The bound's term at index ``t`` for each example, in nats.

    .. math::
        L_t = \begin{cases} -\log p_\theta(x_0 | x_1) & t = 0 \\
        \sum_\ell D_{KL}\big(q(x_t^\ell|x_{t+1},x_0)\,\|\,p_\theta(x_t^\ell|x_{t+1})\big)
        & t \ge 1 \end{cases}

    (paper indexing of :math:`x`; ``x_t`` here is the paper's :math:`x_{t+1}`).

    Args:
      process: the forward process.
      x0_logits: ``float [B, L, V]`` predicted logits of :math:`\tilde p_\theta(x_0|x_t)`.
      x0: clean ids ``int [B, L]``.
      x_t: ids ``int [B, L]`` at index ``t``.
      t: ``int32 [B]`` in ``[0, T)``.

    Returns:
      ``float32 [B]``.
    """
    log_p = p_posterior_logits(process, x0_logits, x_t, t)
    log_q = q_posterior_logits(process, x0, x_t, t)
    kl = jnp.sum(_kl(log_q, log_p), axis=-1)
    decoder_nll = -jnp.sum(_gather(log_p, x0), axis=-1)
    return jnp.where(t == 0, decoder_nll, kl)


def d3pm_prior_kl(process: D3PMProcess, x0) -> jax.Array:
    r""":math:`L_T = \sum_\ell D_{KL}\big(q(x_T^\ell | x_0)\,\|\,\pi\big)` in nats, ``[B]``.

    Zero for absorbing (:math:`\bar\alpha_T = 0`); about :math:`\bar\alpha_T^2` per position
    for uniform with the capped cosine schedule.
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    alpha_bar = jnp.exp(process.log_alpha_bars[-1])
    onehot = jax.nn.one_hot(x0, process.vocab_size, dtype=jnp.float32)
    q = alpha_bar * onehot + (1.0 - alpha_bar) * process.stationary[None, None, :]
    log_pi = jnp.log(process.stationary)[None, None, :]
    return jnp.sum(_kl(jnp.log(q), jnp.broadcast_to(log_pi, q.shape)), axis=-1)


def d3pm_cross_entropy(process: D3PMProcess, x0_logits, x0) -> jax.Array:
    r"""The auxiliary denoising term :math:`-\sum_\ell \log\tilde p_\theta(x_0^\ell | x_t)`,
    ``[B]`` nats (``[MASK]`` logit ignored for absorbing)."""
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_logits("x0_logits", x0_logits, *x0.shape, process.vocab_size)
    log_p_x0 = log_softmax_excluding(x0_logits.astype(jnp.float32), process.mask_id)
    return -jnp.sum(_gather(log_p_x0, x0), axis=-1)


def d3pm_loss(key, denoise_fn, process: D3PMProcess, x0, *, hybrid_coeff: float = 0.01,
              cond=None, t=None) -> jax.Array:
    r"""D3PM's hybrid training loss per example, ``[B]`` nats.

    .. math::
        L_\lambda = L_t + \lambda\Big(-\sum_\ell \log\tilde p_\theta(x_0^\ell | x_t)\Big),
        \qquad t \sim \mathcal U\{0, \dots, T-1\},\ x_t \sim q(x_t|x_0)

    (D3PM's hybrid loss, with :math:`\lambda = 0.01` for text). As in the reference
    implementation the bound enters through one term per example, so
    :math:`\mathbb E_t[L_t] = (L_{vb} - L_T)/T`; ``hybrid_coeff=0`` gives the pure
    :math:`L_{vb}` objective. :func:`jaxdiff.discrete.d3pm_elbo` evaluates the bound itself.

    Args:
      key: PRNG key for ``t`` (unless given) and :math:`x_t`.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> x0 logits [B, L, V]``.
      process: the forward process.
      x0: clean ids ``int [B, L]``.
      hybrid_coeff: :math:`\lambda`.
      cond: conditioning passed to ``denoise_fn`` (batch first).
      t: optional fixed ``int32 [B]`` indices (per-timestep diagnostics); uniform if None.

    Returns:
      ``float32 [B]``.
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    batch = x0.shape[0]
    check_cond(cond, batch)
    key_t, key_x = jax.random.split(key)
    if t is None:
        t = jax.random.randint(key_t, (batch,), 0, process.num_steps, dtype=jnp.int32)
    check_timesteps("t", t, batch, process.num_steps)
    x_t = q_sample(key_x, process, x0, t)
    logits = call_denoiser(denoise_fn, x_t, t, cond, process.vocab_size)
    vb = d3pm_vb_terms(process, logits, x0, x_t, t)
    return vb + hybrid_coeff * d3pm_cross_entropy(process, logits, x0)


def masked_elbo_terms(process, x0_logits, x0, z_t, t) -> jax.Array:
    r"""The continuous-time integrand at time ``t`` for each example, in nats.

    .. math:: \frac{-\alpha_t'}{1 - \alpha_t} \sum_{\ell:\, z_t^\ell = m}
        -\log\tilde p_\theta(x_0^\ell | z_t)

    with :math:`\tilde p_\theta` the softmax of ``x0_logits`` over the non-``[MASK]`` ids
    (MDLM's zero-masking; unmasked positions are carried over and cost nothing).

    Args:
      process: a :class:`~jaxdiff.discrete.masking.MaskedProcess`.
      x0_logits: ``float [B, L, V]``.
      x0: clean ids ``int [B, L]``.
      z_t: ids ``int [B, L]`` at time ``t``.
      t: ``float32 [B]`` in ``(0, 1]``.

    Returns:
      ``float32 [B]``.
    """
    check_masked_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_tokens("z_t", z_t, process.vocab_size, shape=x0.shape)
    check_logits("x0_logits", x0_logits, *x0.shape, process.vocab_size)
    check_times("t", t, x0.shape[0])
    log_p_x0 = log_softmax_excluding(x0_logits.astype(jnp.float32), process.mask_id)
    nll = -_gather(log_p_x0, x0)
    masked = z_t == process.mask_id
    return masking_weight(process, t) * jnp.sum(jnp.where(masked, nll, 0.0), axis=-1)


def sample_times(key, batch: int, *, antithetic: bool) -> jax.Array:
    r"""``float32 [B]`` times in :math:`(0, 1]`: i.i.d. uniform, or with ``antithetic`` the
    low-discrepancy grid :math:`t_i = 1 - ((u + i/B) \bmod 1)` of MDLM / MD4 (one shared
    :math:`u`; each :math:`t_i` is still uniform, so estimates stay unbiased)."""
    if antithetic:
        u = jax.random.uniform(key, (), jnp.float32)
        grid = jnp.arange(batch, dtype=jnp.float32) / batch
        return 1.0 - jnp.mod(u + grid, 1.0)
    return 1.0 - jax.random.uniform(key, (batch,), jnp.float32)


def masked_diffusion_loss(key, denoise_fn, process, x0, *, cond=None, t=None,
                          antithetic: bool = True) -> jax.Array:
    r"""The masked-diffusion negative ELBO, one Monte-Carlo sample of :math:`t` per example.

    .. math:: \mathcal L = \frac{-\alpha_t'}{1 - \alpha_t}
        \sum_{\ell:\, z_t^\ell = m} -\log\tilde p_\theta(x_0^\ell | z_t),
        \qquad t \sim \mathcal U(0, 1],\ z_t \sim q(z_t | x_0)

    An unbiased estimate of the bound (MD4, MDLM), so it is both the training
    loss and a likelihood estimate. ``denoise_fn`` receives ``t`` as ``float32 [B]``.

    Args:
      key: PRNG key for ``t`` (unless given) and :math:`z_t`.
      denoise_fn: ``denoise_fn(z_t, t, cond) -> x0 logits [B, L, V]``.
      process: a :class:`~jaxdiff.discrete.masking.MaskedProcess`.
      x0: clean ids ``int [B, L]``.
      cond: conditioning passed to ``denoise_fn`` (batch first).
      t: optional fixed ``float32 [B]`` times in ``(0, 1]``.
      antithetic: draw the batch's times on a shifted grid (see :func:`sample_times`).

    Returns:
      ``float32 [B]``.
    """
    check_masked_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    batch = x0.shape[0]
    check_cond(cond, batch)
    key_t, key_z = jax.random.split(key)
    if t is None:
        t = sample_times(key_t, batch, antithetic=antithetic)
    check_times("t", t, batch)
    z_t = masked_q_sample(key_z, process, x0, t)
    logits = call_denoiser(denoise_fn, z_t, t, cond, process.vocab_size)
    return masked_elbo_terms(process, logits, x0, z_t, t)
