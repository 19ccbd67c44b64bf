r"""Samplers for masked (absorbing) diffusion models, all one ``lax.scan`` of the same step.

Every step asks the denoiser for :math:`\tilde p_\theta(x | z_t)` (after temperature and
nucleus truncation, :func:`jaxdiff.discrete.distributions.x0_log_probs`) and lets a rule
decide which positions change:

- :func:`masked_sample`: MDLM / MD4's ancestral step -- each masked position is unmasked with
  probability :math:`(\alpha_s - \alpha_t) / (1 - \alpha_t)`.
- :func:`remdm_sample`: ReMDM (Wang et al. 2025, "Remasking Discrete Diffusion Models with
  Inference-Time Scaling"): a decoded token is also remasked with probability
  :math:`\sigma_t`, on the ``cap``, ``rescale`` or ``conf`` schedule.
- :func:`confidence_sample`: LLaDA's low-confidence remasking (Nie et al. 2025, "Large
  Language Diffusion Models"): every masked position is predicted, the most confident
  predictions are kept and the others stay masked; ``order="random"`` keeps random ones.

Options shared by all: ``block_length`` decodes **semi-autoregressively** (LLaDA; MDLM's
semi-AR): the sequence is cut into blocks of ``block_length`` positions, unmasked left to
right with ``num_steps / blocks`` steps each, later blocks staying masked; ``cache=True``
skips the network after a step that changed nothing (MDLM's cached sampler) -- exact only
for a denoiser that ignores ``t`` (no time conditioning, as MDLM's and BD3-LM's), so it is
the caller's promise. Known tokens (``inpaint_mask`` / ``inpaint_values``) are clamped in the
initial state and after every step; they are never remasked. Step ``i`` draws with
``fold_in(key, i)`` (a rule that needs two draws splits it), so ``masked_sample``'s
defaults give the draws it always gave.

The denoiser's time: the step's :math:`t` (one per step) without blocks; with
``block_length``, the time whose masking probability is the row's fraction of masked
positions (the state's time under the forward process). ``float64=True`` draws in float64
(see :mod:`jaxdiff.discrete.samplers`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import (
    call_denoiser,
    check_choice,
    check_cond,
    check_float64,
    check_inpaint,
    check_int,
    check_sequence_shape,
)
from jaxdiff.discrete.distributions import (
    categorical,
    check_temperature,
    check_top_p,
    x0_log_probs,
)
from jaxdiff.discrete.masking import (
    MaskedProcess,
    check_masked_process,
    mask_probability,
    unmasking_log_probs,
)

REMASKING_SCHEDULES = ("cap", "rescale", "conf")
ORDERS = ("confidence", "random")

# update(key, z, log_p_x0, step, aux) -> (z, aux); step holds the local times "t", "s" (float32
# scalars), the active positions "active" (bool [1, L]), "remaining" (int32 scalar, steps
# left in the block including this one) and the denoiser's raw "logits" [B, L, V]
Update = Callable[..., tuple[jax.Array, jax.Array]]


def masked_time(process: MaskedProcess, fraction) -> jax.Array:
    r"""The time whose masking probability is ``fraction``: :math:`t = m^{-1}(f)` --
    :math:`f` (loglinear) or :math:`\tfrac2\pi \arcsin f` (cosine)."""
    if process.schedule == "loglinear":
        return fraction
    return 2.0 / jnp.pi * jnp.arcsin(fraction)


def _block_plan(length: int, num_steps: int, block_length: int | None) -> tuple[int, int]:
    """``(blocks, steps per block)``, or a ``ValueError`` naming what does not divide."""
    if block_length is None:
        return 1, num_steps
    block_length = check_int("block_length", block_length)
    if length % block_length:
        raise ValueError(f"block_length={block_length} must divide the sequence length "
                         f"{length}")
    blocks = length // block_length
    if num_steps % blocks:
        raise ValueError(f"num_steps={num_steps} must be a multiple of the number of blocks "
                         f"{blocks} (sequence length {length} / block_length={block_length})")
    return blocks, num_steps // blocks


def unmasking_scan(key, denoise_fn, process: MaskedProcess, shape, update: Update, *,
                   num_steps: int, aux=None, block_length: int | None = None,
                   time_from_state: bool = False, cache: bool = False, cond=None,
                   temperature: float = 1.0, top_p: float = 1.0, float64: bool = False,
                   inpaint_mask=None, inpaint_values=None) -> jax.Array:
    """The scan every sampler of this module runs (module doc); ``update`` is its rule,
    ``aux`` the rule's own carried state (a ``[B, L]`` array or None); ``time_from_state``
    gives the denoiser the time of the state's masked fraction even without blocks (for a
    rule whose masked fraction does not follow the schedule's grid)."""
    check_masked_process(process)
    batch, length = check_sequence_shape(shape)
    check_cond(cond, batch)
    check_float64(float64)
    num_steps = check_int("num_steps", num_steps)
    temperature, top_p = check_temperature(temperature), check_top_p(top_p)
    blocks, per_block = _block_plan(length, num_steps, block_length)
    known, values = check_inpaint(inpaint_mask, inpaint_values, (batch, length),
                                  process.vocab_size, process.mask_id)
    mask_id = process.mask_id

    def clamp(z):
        return z if known is None else jnp.where(known, values, z)

    def denoiser_time(z, t):
        if block_length is None and not time_from_state:
            return jnp.full((batch,), t, jnp.float32)
        fraction = jnp.mean((z == mask_id).astype(jnp.float32), axis=1)
        return masked_time(process, fraction)

    def step(carry, i):
        z, aux, logits, stale = carry
        local = i % per_block
        # (K - j) / K and (K - j - 1) / K: exact at s = 0 (1 - (j + 1) / K can round to
        # -1.5e-8 in float32, whose NaN mask probability would leave [MASK] ids behind).
        t = (per_block - local).astype(jnp.float32) / per_block
        s = (per_block - 1 - local).astype(jnp.float32) / per_block

        def fresh():
            return call_denoiser(denoise_fn, z, denoiser_time(z, t), cond, process.vocab_size)

        logits = jax.lax.cond(stale, fresh, lambda: logits) if cache else fresh()
        block = jnp.arange(length) // (length // blocks)
        info = {"t": t, "s": s, "active": (block == i // per_block)[None, :],
                "remaining": per_block - local, "logits": logits}
        log_p = x0_log_probs(logits, mask_id, temperature=temperature, top_p=top_p)
        new, aux = update(jax.random.fold_in(key, i), z, log_p, info, aux)
        new = clamp(new)
        return (new, aux, logits, jnp.any(new != z)), None

    z = clamp(jnp.full((batch, length), mask_id, jnp.int32))
    logits = jnp.zeros((batch, length, process.vocab_size), jnp.float32)
    (z, _, _, _), _ = jax.lax.scan(step, (z, aux, logits, jnp.array(True)),
                                   jnp.arange(num_steps, dtype=jnp.int32))
    return z


def masked_sample(key, denoise_fn, process, shape, *, num_steps: int, cond=None,
                  temperature: float = 1.0, top_p: float = 1.0, block_length: int | None = None,
                  cache: bool = False, float64: bool = False, inpaint_mask=None,
                  inpaint_values=None) -> jax.Array:
    r"""Masked-diffusion sampling: start all ``[MASK]`` at :math:`t = 1`, unmask to :math:`t = 0`
    in ``K`` uniform time steps.

    From :math:`t` to :math:`s = t - 1/K`, every still-masked position is, independently and in
    parallel (MD4, MDLM):

    .. math::
        z_s^\ell \sim \mathrm{Cat}\Big(\frac{\alpha_s - \alpha_t}{1 - \alpha_t}\,
        \tilde p_\theta(\cdot | z_t) + \frac{1 - \alpha_s}{1 - \alpha_t}\, e_m\Big),

    while unmasked positions are carried over. At :math:`s = 0`, :math:`\alpha_s = 1` and every
    remaining ``[MASK]`` is filled, so the output holds no ``[MASK]``.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(z_t, t, cond) -> x0 logits [B, L, V]``, ``t`` float32 [B].
      process: a :class:`~jaxdiff.discrete.masking.MaskedProcess`.
      shape: ``(B, L)`` (static).
      num_steps: ``K`` >= 1 (static); with ``block_length``, in all.
      cond: conditioning for ``denoise_fn`` (batch first).
      temperature: divides the logits; top_p: nucleus mass in ``(0, 1]``.
      block_length: semi-autoregressive blocks (module doc), or None.
      cache: skip the network after a step that changed nothing (module doc).
      float64: draw the categoricals in float64 (needs 64-bit mode).
      inpaint_mask: ``bool [B, L]``, True where the token is known.
      inpaint_values: ``int [B, L]`` known tokens (read where ``inpaint_mask``).

    Returns:
      ``int32 [B, L]`` token ids.
    """
    mask_id = process.mask_id if isinstance(process, MaskedProcess) else None

    def update(key, z, log_p, step, aux):
        ratio = mask_probability(process, step["s"]) / mask_probability(process, step["t"])
        draw = categorical(key, unmasking_log_probs(log_p, ratio, mask_id), float64=float64)
        return jnp.where((z == mask_id) & step["active"], draw, z), aux

    return unmasking_scan(key, denoise_fn, process, shape, update, num_steps=num_steps,
                          block_length=block_length, cache=cache,
                          cond=cond, temperature=temperature, top_p=top_p, float64=float64,
                          inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)


def remasking_sigmas(process: MaskedProcess, num_steps: int, *, schedule: str,
                     eta: float) -> np.ndarray:
    r"""ReMDM's remasking probability per step (``float64 [K]``; ``conf`` returns
    :math:`\sigma^{max}_t`, which it shares out over the decoded tokens), on the grid
    :math:`t_i = 1 - i/K`:

    .. math:: \sigma^{max}_t = \min\Big(1, \frac{1 - \alpha_s}{\alpha_t}\Big),\qquad
        \texttt{cap}: \min(\eta, \sigma^{max}_t),\quad \texttt{rescale}: \eta\,\sigma^{max}_t

    (:math:`\sigma^{max}_t = 1` at :math:`\alpha_t = 0`). A schedule whose
    :math:`\sigma_t > \sigma^{max}_t` would give the probability of staying masked,
    :math:`(1 - \alpha_s - \sigma_t \alpha_t) / (1 - \alpha_t)`, a negative value: that is a
    ``ValueError`` naming ``eta`` and the step.
    """
    check_choice("schedule", schedule, REMASKING_SCHEDULES)
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not eta >= 0:
        raise ValueError(f"eta must be a float >= 0, got {eta!r}")
    grid = np.arange(num_steps, dtype=np.float64)
    t, s = (num_steps - grid) / num_steps, (num_steps - 1 - grid) / num_steps
    with jax.ensure_compile_time_eval():   # a static grid, also while a sampler is traced
        alpha_t = 1 - np.asarray(mask_probability(process, t), np.float64)
        alpha_s = 1 - np.asarray(mask_probability(process, s), np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_max = np.where(alpha_t > 0, np.minimum(1.0, (1 - alpha_s) / alpha_t), 1.0)
    sigma = {"cap": np.minimum(eta, sigma_max), "rescale": eta * sigma_max,
             "conf": sigma_max}[schedule]
    stay_masked = 1 - alpha_s - sigma * alpha_t
    bad = np.flatnonzero(stay_masked < -1e-6)   # float32 schedules round at ~1e-7
    if bad.size:
        raise ValueError(f"eta={eta} with schedule {schedule!r} remasks with sigma > "
                         f"sigma_max at step {int(bad[0])} (t={t[bad[0]]:.4g}), which makes "
                         f"the probability of staying masked negative; rescale needs "
                         f"eta <= 1")
    return sigma


def conf_sigmas(sigma_max, confidence, decoded) -> jax.Array:
    r"""ReMDM-conf's remasking probability per token, ``[B, L]``: :math:`\sigma^{max}_t`
    shared over a row's decoded tokens by :math:`\mathrm{softmax}(-\psi)`, :math:`\psi` the
    probability each had when it was decoded (0 for masked positions and for a row with
    nothing decoded)."""
    weights = jax.nn.softmax(jnp.where(decoded, -confidence, -jnp.inf), axis=-1)
    return sigma_max * jnp.where(decoded, jnp.nan_to_num(weights), 0.0)


def remdm_sample(key, denoise_fn, process, shape, *, num_steps: int, schedule: str = "cap",
                 eta: float = 0.02, cond=None, temperature: float = 1.0, top_p: float = 1.0,
                 cache: bool = False, float64: bool = False, inpaint_mask=None,
                 inpaint_values=None) -> jax.Array:
    r"""ReMDM sampling (Wang et al. 2025): masked diffusion whose reverse step may remask.

    From :math:`t` to :math:`s`, with :math:`\sigma_t` from :func:`remasking_sigmas`:

    .. math::
        q_\sigma(z_s | z_t = x) = (1 - \sigma_t)\, e_x + \sigma_t\, e_m, \qquad
        q_\sigma(z_s | z_t = m) = \frac{\alpha_s - (1 - \sigma_t)\alpha_t}{1 - \alpha_t}\,
        \tilde p_\theta + \frac{1 - \alpha_s - \sigma_t \alpha_t}{1 - \alpha_t}\, e_m,

    which keeps the forward marginals :math:`q(z_s | x)` given the data for every valid
    :math:`\sigma_t`; ``eta = 0`` is :func:`masked_sample`. With the exact denoiser the
    sampler tends to the data as the steps shrink only if :math:`\sigma_t` shrinks with them
    (e.g. ``cap`` with :math:`\eta \propto 1/K`): a large :math:`\sigma_t` remasks and
    redraws many tokens in one factorised step (``rescale`` with :math:`\eta = 1` remasks
    every decoded token while :math:`t > 1/2` on the log-linear schedule). ``conf`` shares
    :math:`\sigma^{max}_t` over the decoded tokens by a
    softmax of their negated confidence (the probability each had when it was decoded), so
    the least confident are remasked first; a masked position then unmasks as in MDLM.

    Args:
      schedule: ``cap`` (ReMDM's default), ``rescale`` or ``conf``.
      eta: :math:`\eta` of ``cap`` / ``rescale`` (ignored by ``conf``; ReMDM's OWT runs use
        0.02 - 0.05).
      key, denoise_fn, process, shape, num_steps, cond, temperature, top_p, cache, float64,
      inpaint_mask, inpaint_values: as in :func:`masked_sample`.

    Returns:
      ``int32 [B, L]`` token ids, no ``[MASK]``.
    """
    check_masked_process(process)
    num_steps = check_int("num_steps", num_steps)
    sigmas = jnp.asarray(remasking_sigmas(process, num_steps, schedule=schedule, eta=eta),
                         jnp.float32)
    mask_id, batch_length = process.mask_id, check_sequence_shape(shape)
    fixed = (jnp.zeros(batch_length, bool) if inpaint_mask is None
             else jnp.asarray(inpaint_mask).astype(bool))

    def update(key, z, log_p, step, confidence):
        i = num_steps - step["remaining"]
        alpha_t = 1 - mask_probability(process, step["t"])
        alpha_s = 1 - mask_probability(process, step["s"])
        decoded = (z != mask_id) & ~fixed
        if schedule == "conf":
            sigma = conf_sigmas(sigmas[i], confidence, decoded)
        else:
            sigma = jnp.full(z.shape, sigmas[i])
        key_draw, key_remask = jax.random.split(key)
        unmask = (alpha_s - (1 - sigma) * alpha_t) / jnp.maximum(1 - alpha_t, 1e-30)
        stay = jnp.clip(1 - unmask, 0.0, 1.0)[..., None]
        draw = categorical(key_draw, unmasking_log_probs(log_p, stay, mask_id), float64=float64)
        remask = jax.random.uniform(key_remask, z.shape) < sigma
        new = jnp.where(z == mask_id, draw, jnp.where(remask & decoded, mask_id, z))
        chosen = jnp.take_along_axis(jnp.exp(log_p), new[..., None], axis=-1)[..., 0]
        newly = (z == mask_id) & (new != mask_id)
        return new, jnp.where(newly, chosen, confidence)

    return unmasking_scan(key, denoise_fn, process, shape, update, num_steps=num_steps,
                          aux=jnp.zeros(batch_length, jnp.float32), cache=cache, cond=cond,
                          temperature=temperature, top_p=top_p, float64=float64,
                          inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)


def confidence_sample(key, denoise_fn, process, shape, *, num_steps: int,
                      order: str = "confidence", block_length: int | None = None, cond=None,
                      temperature: float = 1.0, top_p: float = 1.0, cache: bool = False,
                      float64: bool = False, inpaint_mask=None,
                      inpaint_values=None) -> jax.Array:
    r"""LLaDA's sampler (Nie et al. 2025): at each step every masked position of the active
    block draws :math:`\hat x^\ell \sim \tilde p_\theta(\cdot | z_t)` (after temperature and
    nucleus truncation); the :math:`n = \lceil r / k \rceil` with the highest confidence
    :math:`\tilde p_\theta(\hat x^\ell)` (the untempered softmax, as LLaDA's) are kept
    (:math:`r` masked positions left in the block, :math:`k` steps left) and the others stay
    masked ("low-confidence remasking"). ``order="random"`` keeps :math:`n` random
    ones instead (LLaDA's random remasking). The block is filled by its last step.

    Args:
      order: ``confidence`` or ``random``.
      block_length: semi-autoregressive blocks (LLaDA's ``block_length``), or None.
      key, denoise_fn, process, shape, num_steps, cond, temperature, top_p, cache, float64,
      inpaint_mask, inpaint_values: as in :func:`masked_sample`.

    Returns:
      ``int32 [B, L]`` token ids, no ``[MASK]``.
    """
    check_choice("order", order, ORDERS)
    mask_id = process.mask_id if isinstance(process, MaskedProcess) else None

    def update(key, z, log_p, step, aux):
        key_draw, key_order = jax.random.split(key)
        candidates = step["active"] & (z == mask_id)
        draw = categorical(key_draw, log_p, float64=float64)
        if order == "confidence":   # LLaDA ranks by softmax(logits), untempered
            plain = x0_log_probs(step["logits"], mask_id)
            score = jnp.take_along_axis(plain, draw[..., None], axis=-1)[..., 0]
        else:
            score = jax.random.uniform(key_order, z.shape)
        score = jnp.where(candidates, score, -jnp.inf)
        remaining = jnp.sum(candidates, axis=1, keepdims=True)
        keep = -(-remaining // step["remaining"])                     # ceil(r / k)
        rank = jnp.argsort(jnp.argsort(-score, axis=1, stable=True), axis=1, stable=True)
        return jnp.where(candidates & (rank < keep), draw, z), aux

    return unmasking_scan(key, denoise_fn, process, shape, update, num_steps=num_steps,
                          block_length=block_length, time_from_state=True, cache=cache,
                          cond=cond, temperature=temperature, top_p=top_p, float64=float64,
                          inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)
