r"""Per-timestep diagnostics of a denoiser: how well it undoes each noise level.

All functions talk to ``denoise_fn(x_t, t, cond)`` (the library's one boundary), run jitted
(``denoise_fn`` is a static argument: pass the same function object to reuse the compiled
code) and return curves as arrays.

* :func:`reconstruction_error` (Gaussian): noise data to step :math:`t` with
  :func:`jaxdiff.gaussian.q_sample`, then denoise it (a) in one step,
  :math:`\hat x_0(x_t, t)` -- the posterior-mean (MMSE) estimate for an optimal denoiser -- and
  (b) by the deterministic DDIM chain (:math:`\eta = 0`, Song et al. 2021, eq. 12) started at
  :math:`x_t` on the levels :math:`\tau_i = \lfloor i\,t/(S-1) \rfloor`, :math:`i = S-1 .. 0`,
  then to the data. Reports MSE and PSNR :math:`= 10\log_{10}(4/\mathrm{MSE})` (data range
  :math:`[-1, 1]`) per :math:`t`.
* :func:`loss_per_timestep` (Gaussian): :func:`jaxdiff.gaussian.loss` with :math:`t` drawn
  uniformly inside each of ``num_buckets`` equal buckets of :math:`[0, T)`.
* :func:`d3pm_token_accuracy` / :func:`masked_token_accuracy` (discrete): accuracy of
  :math:`\arg\max` x0-logits (``[MASK]`` excluded) on the corrupted positions
  (:math:`x_t \ne x_0`) and on all positions, per timestep bucket, pooled over the batch
  (correct tokens / tokens).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import check_batch, check_choice, check_cond, check_int
from jaxdiff.discrete.masking import MaskedProcess, masked_q_sample
from jaxdiff.discrete.transitions import D3PMProcess
from jaxdiff.discrete.transitions import q_sample as d3pm_q_sample
from jaxdiff.gaussian.forward import (
    PREDICTIONS,
    alpha_sigma,
    clip_x0_and_eps,
    q_sample,
    x0_eps_from_prediction,
)
from jaxdiff.gaussian.losses import WEIGHTINGS
from jaxdiff.gaussian.losses import loss as gaussian_loss
from jaxdiff.gaussian.samplers import ddim_step
from jaxdiff.gaussian.schedules import Schedule, schedule_from_log_snrs

DATA_RANGE = 2.0
"""The width of the data interval [-1, 1], the peak of the PSNR."""


def psnr(mse, *, data_range: float = DATA_RANGE):
    r"""Peak signal-to-noise ratio in dB: :math:`10 \log_{10}(\text{range}^2 / \mathrm{MSE})`
    (``4 / MSE`` for data in [-1, 1]); ``inf`` where ``MSE == 0``."""
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    mse = jnp.asarray(mse)
    return 10.0 * (2.0 * jnp.log10(jnp.asarray(data_range, mse.dtype)) - jnp.log10(mse))


class Reconstruction(NamedTuple):
    """Reconstruction curves, each ``[K]`` over the ``K`` timesteps asked for.

    Attributes:
      timesteps: ``int32 [K]``, the noise levels.
      mse_one_step, psnr_one_step: of the one-step :math:`\\hat x_0(x_t, t)`.
      mse_chain, psnr_chain: of the deterministic DDIM chain from :math:`x_t`.
    """

    timesteps: jax.Array
    mse_one_step: jax.Array
    psnr_one_step: jax.Array
    mse_chain: jax.Array
    psnr_chain: jax.Array


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a jaxdiff.gaussian.Schedule, "
                        f"got {type(schedule).__name__}")


def chain_timesteps(t: jax.Array, num_steps: int) -> jax.Array:
    r"""The DDIM chain's levels from ``t`` down: :math:`\tau_i = \lfloor i\,t/(S-1)\rfloor`,
    ``int32 [B, S]`` for ``t`` ``[B]`` and :math:`S \ge 2`, increasing in ``i`` (repeats, when
    :math:`t + 1 < S`, are zero-length jumps)."""
    num_steps = check_int("num_steps", num_steps, 2)
    i = jnp.arange(num_steps, dtype=jnp.int32)
    return (t[:, None] * i[None, :]) // (num_steps - 1)


def _chain_schedules(schedule: Schedule, taus: jax.Array) -> Schedule:
    """Every example's respaced schedule at once, fields ``[S, B]`` for ``taus`` ``[S, B]``:
    :func:`jaxdiff.gaussian.respace` of its column (repeated levels allowed)."""
    build = functools.partial(schedule_from_log_snrs, dtype=schedule.log_snrs.dtype)
    return jax.vmap(build, in_axes=1, out_axes=1)(schedule.log_snrs[taus])


def ddim_reconstruct(denoise_fn, schedule: Schedule, x_t: jax.Array, t: jax.Array, *,
                     num_steps: int, prediction: str = "eps", cond=None,
                     clip_x0: bool = False) -> jax.Array:
    r"""The deterministic DDIM chain (:math:`\eta = 0`) from ``x_t`` at per-example levels
    ``t`` down to the data: ``num_steps`` (:math:`\ge 2`) model calls on
    :func:`chain_timesteps`, each a :func:`jaxdiff.gaussian.ddim_step`,
    :math:`x_{\tau_{i-1}} = \alpha_{\tau_{i-1}}\hat x_0 + \sigma_{\tau_{i-1}}\hat\epsilon`,
    the last step returning :math:`\hat x_0`. One ``lax.scan``; ``jit``-able.
    """
    taus = chain_timesteps(t, num_steps).T                              # [S, B]
    chains = _chain_schedules(schedule, taus)
    key = jax.random.key(0)  # eta = 0: the step's noise is multiplied by 0

    def model(x, tau):
        return denoise_fn(x, tau, cond)

    def step(x, i):
        x_s = ddim_step(key, model, chains, taus, i, x, prediction=prediction, clip_x0=clip_x0)
        return x_s.astype(x.dtype), None

    x, _ = jax.lax.scan(step, x_t, jnp.arange(num_steps - 1, -1, -1))
    return x


@functools.partial(jax.jit, static_argnums=(1,),
                   static_argnames=("num_steps", "prediction", "clip_x0"))
def _reconstruction(key, denoise_fn, schedule, x0, timesteps, cond, *, num_steps, prediction,
                    clip_x0):
    batch = x0.shape[0]

    def one_level(args):
        k, t = args
        tb = jnp.full((batch,), t, jnp.int32)
        noise = jax.random.normal(jax.random.fold_in(key, k), x0.shape, x0.dtype)
        x_t = q_sample(schedule, x0, tb, noise)
        alpha, sigma = alpha_sigma(schedule, tb)
        x0_hat, _ = x0_eps_from_prediction(prediction, denoise_fn(x_t, tb, cond), x_t,
                                           alpha, sigma)
        if clip_x0:
            x0_hat, _ = clip_x0_and_eps(x0_hat, x_t, alpha, sigma)
        chain = ddim_reconstruct(denoise_fn, schedule, x_t, tb, num_steps=num_steps,
                                 prediction=prediction, cond=cond, clip_x0=clip_x0)
        return jnp.mean((x0_hat - x0) ** 2), jnp.mean((chain - x0) ** 2)

    ks = jnp.arange(timesteps.shape[0], dtype=jnp.int32)
    return jax.lax.map(one_level, (ks, timesteps))


def reconstruction_error(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array,
                         timesteps, *, num_steps: int = 20, prediction: str = "eps",
                         cond=None, clip_x0: bool = False) -> Reconstruction:
    r"""MSE and PSNR of denoising ``x0`` noised to each of ``timesteps``, one-step and by chain.

    For each level :math:`t` (its own noise, ``fold_in(key, k)`` for the ``k``-th level),
    :math:`x_t = \alpha_t x_0 + \sigma_t\epsilon`; the one-step reconstruction is
    :math:`\hat x_0(x_t, t)`, the chain one is :func:`ddim_reconstruct` with ``num_steps``
    model calls. MSE is the mean over the batch and all dimensions; PSNR is
    :math:`10\log_{10}(4/\mathrm{MSE})` of that mean.

    Args:
      key: PRNG key for the noise.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> prediction`` (static under ``jit``).
      schedule: the training schedule (``T`` steps).
      x0: clean data ``[B, ...]`` in [-1, 1].
      timesteps: ``int [K]`` levels in ``[0, T)``.
      num_steps: model calls of the chain (``S >= 2``; levels repeat when ``t + 1 < S``).
      prediction: what ``denoise_fn`` predicts: ``eps``, ``x0`` or ``v``.
      cond: conditioning for ``denoise_fn`` (batch first).
      clip_x0: clip :math:`\hat x_0` to [-1, 1] (both reconstructions, every chain step).
    """
    _check_schedule(schedule)
    check_batch("x0", x0)
    check_choice("prediction", prediction, PREDICTIONS)
    num_steps = check_int("num_steps", num_steps, 2)
    check_cond(cond, x0.shape[0])
    steps = np.asarray(timesteps)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"timesteps must be a non-empty 1-D array of ints, got {timesteps!r}")
    if steps.min() < 0 or steps.max() >= schedule.num_steps:
        raise ValueError(f"timesteps must lie in [0, {schedule.num_steps}), got values in "
                         f"[{steps.min()}, {steps.max()}]")
    steps = jnp.asarray(steps, jnp.int32)
    mse_one, mse_chain = _reconstruction(key, denoise_fn, schedule, x0, steps, cond,
                                         num_steps=num_steps, prediction=prediction,
                                         clip_x0=bool(clip_x0))
    return Reconstruction(steps, mse_one, psnr(mse_one), mse_chain, psnr(mse_chain))


def bucket_edges(num_steps: int, num_buckets: int) -> np.ndarray:
    r"""``int [K + 1]`` edges :math:`\lfloor bT/K \rfloor`; bucket ``b`` is
    ``[edges[b], edges[b + 1])``."""
    num_steps = check_int("num_steps", num_steps, 1)
    num_buckets = check_int("num_buckets", num_buckets, 1)
    if num_buckets > num_steps:
        raise ValueError(f"num_buckets must be <= the number of steps {num_steps}, "
                         f"got {num_buckets}")
    return (np.arange(num_buckets + 1) * num_steps) // num_buckets


def _bucket_steps(key, edges, b, batch):
    return jax.random.randint(key, (batch,), edges[b], edges[b + 1], dtype=jnp.int32)


@functools.partial(jax.jit, static_argnums=(1,),
                   static_argnames=("num_buckets", "prediction", "weighting", "min_snr_gamma"))
def _loss_curve(key, denoise_fn, schedule, x0, cond, *, num_buckets, prediction, weighting,
                min_snr_gamma):
    edges = jnp.asarray(bucket_edges(schedule.num_steps, num_buckets), jnp.int32)
    batch = x0.shape[0]

    def one_bucket(b):
        key_t, key_loss = jax.random.split(jax.random.fold_in(key, b))
        t = _bucket_steps(key_t, edges, b, batch)
        losses = gaussian_loss(key_loss, denoise_fn, schedule, x0, prediction=prediction,
                               cond=cond, t=t, weighting=weighting, min_snr_gamma=min_snr_gamma)
        return jnp.mean(losses)

    return jax.lax.map(one_bucket, jnp.arange(num_buckets, dtype=jnp.int32))


def loss_per_timestep(key: jax.Array, denoise_fn, schedule: Schedule, x0: jax.Array, *,
                      num_buckets: int = 10, prediction: str = "eps", cond=None,
                      weighting: str = "uniform", min_snr_gamma: float = 5.0
                      ) -> tuple[np.ndarray, jax.Array]:
    r"""The training loss per timestep bucket: ``(edges [K + 1], loss [K])``.

    Bucket ``b`` draws each example's :math:`t` uniformly from
    ``[edges[b], edges[b + 1])`` (:func:`bucket_edges`) and averages
    :func:`jaxdiff.gaussian.loss` (``prediction``, ``weighting``, ``min_snr_gamma`` as there;
    fixed variance) over the batch; so ``loss[b]`` estimates the loss averaged uniformly over
    the bucket's steps.
    """
    _check_schedule(schedule)
    check_batch("x0", x0)
    check_choice("prediction", prediction, PREDICTIONS)
    check_choice("weighting", weighting, WEIGHTINGS)
    check_cond(cond, x0.shape[0])
    edges = bucket_edges(schedule.num_steps, num_buckets)
    curve = _loss_curve(key, denoise_fn, schedule, x0, cond, num_buckets=int(num_buckets),
                        prediction=prediction, weighting=weighting,
                        min_snr_gamma=float(min_snr_gamma))
    return edges, curve


class TokenAccuracy(NamedTuple):
    """Token accuracy curves over ``K`` timestep buckets.

    Attributes:
      edges: ``[K + 1]`` bucket edges (integer steps for D3PM, times in [0, 1] for masked).
      corrupted: ``[K]`` accuracy on positions with :math:`x_t \\ne x_0` (nan if none).
      overall: ``[K]`` accuracy on all positions.
      num_corrupted: ``[K]`` number of corrupted positions counted.
    """

    edges: np.ndarray
    corrupted: jax.Array
    overall: jax.Array
    num_corrupted: jax.Array


def _check_tokens(x0, vocab_size: int, mask_id: int | None) -> None:
    shape = getattr(x0, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"x0 must be token ids of shape [B, L], got shape {shape}")
    if not jnp.issubdtype(x0.dtype, jnp.integer):
        raise TypeError(f"x0 must hold integer token ids, got dtype {x0.dtype}")
    x = np.asarray(x0)
    if x.size and (x.min() < 0 or x.max() >= vocab_size):
        raise ValueError(f"x0 holds token ids in [{x.min()}, {x.max()}], outside the "
                         f"vocabulary [0, {vocab_size})")
    if mask_id is not None and np.any(x == mask_id):
        raise ValueError(f"x0 contains the [MASK] id {mask_id}; clean data must not")


def _accuracy_counts(denoise_fn, x0, x_t, t, cond, mask_id):
    logits = denoise_fn(x_t, t, cond)
    if logits.shape != x0.shape + (logits.shape[-1],):
        raise ValueError(f"denoise_fn output must have shape [B, L, V] with [B, L] = "
                         f"{x0.shape}, got {logits.shape}")
    if mask_id is not None:
        is_mask = jnp.arange(logits.shape[-1]) == mask_id
        logits = jnp.where(is_mask[None, None, :], -jnp.inf, logits)
    correct = jnp.argmax(logits, axis=-1) == x0
    corrupted = x_t != x0
    return (jnp.sum(correct & corrupted), jnp.sum(corrupted), jnp.sum(correct))


def _curves(edges, counts, num_tokens) -> TokenAccuracy:
    right_c, n_c, right = counts
    corrupted = jnp.where(n_c > 0, right_c / jnp.maximum(n_c, 1), jnp.nan)
    return TokenAccuracy(edges, corrupted, right / num_tokens, n_c)


@functools.partial(jax.jit, static_argnums=(1,), static_argnames=("num_buckets",))
def _d3pm_counts(key, denoise_fn, process, x0, cond, *, num_buckets):
    edges = jnp.asarray(bucket_edges(process.num_steps, num_buckets), jnp.int32)

    def one_bucket(b):
        key_t, key_q = jax.random.split(jax.random.fold_in(key, b))
        t = _bucket_steps(key_t, edges, b, x0.shape[0])
        x_t = d3pm_q_sample(key_q, process, x0, t)
        return _accuracy_counts(denoise_fn, x0, x_t, t, cond, process.mask_id)

    return jax.lax.map(one_bucket, jnp.arange(num_buckets, dtype=jnp.int32))


def d3pm_token_accuracy(key: jax.Array, denoise_fn, process: D3PMProcess, x0: jax.Array, *,
                        num_buckets: int = 10, cond=None) -> TokenAccuracy:
    r"""Argmax x0 accuracy of a D3PM denoiser per bucket of integer steps.

    Bucket ``b`` draws each example's step uniformly from ``[edges[b], edges[b + 1])``
    (:func:`bucket_edges` over the process's ``T``), corrupts with
    :func:`jaxdiff.discrete.q_sample` and compares :math:`\arg\max` of
    ``denoise_fn(x_t, t, cond)`` (``[MASK]`` excluded for absorbing) with :math:`x_0`.
    """
    if not isinstance(process, D3PMProcess):
        raise TypeError(f"process must be a D3PMProcess, got {type(process).__name__}")
    _check_tokens(x0, process.vocab_size, process.mask_id)
    check_cond(cond, x0.shape[0])
    edges = bucket_edges(process.num_steps, num_buckets)
    counts = _d3pm_counts(key, denoise_fn, process, jnp.asarray(x0, jnp.int32), cond,
                          num_buckets=int(num_buckets))
    return _curves(edges, counts, x0.size)


@functools.partial(jax.jit, static_argnums=(1,), static_argnames=("num_buckets",))
def _masked_counts(key, denoise_fn, process, x0, cond, *, num_buckets):
    def one_bucket(b):
        key_t, key_q = jax.random.split(jax.random.fold_in(key, b))
        # t uniform in (b/K, (b+1)/K]: 1 - u with u in [0, 1) keeps t > 0.
        u = jax.random.uniform(key_t, (x0.shape[0],), jnp.float32)
        t = (b + 1.0 - u) / num_buckets
        x_t = masked_q_sample(key_q, process, x0, t)
        return _accuracy_counts(denoise_fn, x0, x_t, t, cond, process.mask_id)

    return jax.lax.map(one_bucket, jnp.arange(num_buckets, dtype=jnp.int32))


def masked_token_accuracy(key: jax.Array, denoise_fn, process: MaskedProcess, x0: jax.Array, *,
                          num_buckets: int = 10, cond=None) -> TokenAccuracy:
    r"""Argmax x0 accuracy of a masked-diffusion denoiser per bucket of time.

    Bucket ``b`` draws each example's time uniformly from :math:`(b/K, (b+1)/K]`, masks with
    :func:`jaxdiff.discrete.masked_q_sample` and compares :math:`\arg\max` of
    ``denoise_fn(z_t, t, cond)`` (``[MASK]`` excluded) with :math:`x_0` on the masked
    positions (``corrupted``) and on all positions (``overall``).
    """
    if not isinstance(process, MaskedProcess):
        raise TypeError(f"process must be a MaskedProcess, got {type(process).__name__}")
    _check_tokens(x0, process.vocab_size, process.mask_id)
    check_cond(cond, x0.shape[0])
    num_buckets = check_int("num_buckets", num_buckets, 1)
    edges = np.linspace(0.0, 1.0, num_buckets + 1)
    counts = _masked_counts(key, denoise_fn, process, jnp.asarray(x0, jnp.int32), cond,
                            num_buckets=num_buckets)
    return _curves(edges, counts, x0.size)
