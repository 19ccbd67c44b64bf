r"""Score entropy discrete diffusion (Lou et al. 2024, "Discrete Diffusion Modeling by
Estimating the Ratios of the Data Distribution", SEDD).

Each token follows a continuous-time Markov chain with rate :math:`\sigma(t)\,Q`; with total
noise :math:`\bar\sigma(t) = \int_0^t \sigma` and :math:`\alpha_t = e^{-\bar\sigma(t)}`:

- ``absorbing`` graph, :math:`Q = e_m \mathbf 1^\top - I`: a token becomes ``[MASK]`` at rate
  1, :math:`p_{t|0}(x | x_0) = \alpha_t\, e_{x_0} + (1 - \alpha_t)\, e_m`; SEDD's log-linear
  noise with :math:`\epsilon = 0`, :math:`\alpha_t = 1 - t` (the masked schedule of
  :mod:`jaxdiff.discrete.masking`), so the prior at :math:`t = 1` is all ``[MASK]`` exactly.
- ``uniform`` graph, :math:`Q = \tfrac1N \mathbf 1 \mathbf 1^\top - I` over :math:`N`
  tokens: :math:`p_{t|0}(x | x_0) = \alpha_t\, e_{x_0} + (1 - \alpha_t) / N`; SEDD's geometric
  noise :math:`\bar\sigma(t) = \sigma_{min}^{1-t} \sigma_{max}^t` (1e-4, 20), prior uniform.

The network estimates the concrete score :math:`s_\theta(x_t, t)^\ell_y \approx p_t(x_t^{\ell
\leftarrow y}) / p_t(x_t)` of changing position :math:`\ell` to :math:`y`. Its output
:math:`o` is a log score (uniform: :math:`\log s = o`); for absorbing, SEDD's scaling
:math:`\log s = o - \log(e^{\bar\sigma} - 1) - \log N` (so :math:`s = \tfrac{\alpha_t}
{1-\alpha_t}\, e^{o} / N`: a network that outputs zeros starts from the uniform
prediction, and with :math:`e^{o}/N` a distribution the loss is masked diffusion's, MDLM).
Training minimises the denoising score entropy, an upper bound on
:math:`-\log p_\theta(x_0)` with the prior term:

.. math:: \int_0^1 \sigma(t)\, \mathbb E_{x_t \sim p_{t|0}}\sum_\ell \sum_{y \ne x_t^\ell}
    Q(x_t^\ell, y)\Big[s_y - r_y \log s_y + r_y(\log r_y - 1)\Big]\mathrm dt
    + D_{KL}(p_{1|0}\,\|\,p_{base}),\qquad r_y = \frac{p_{t|0}(y | x_0^\ell)}
    {p_{t|0}(x_t^\ell | x_0^\ell)},

where :math:`Q(x, y)` is the rate of :math:`y \to x`. The sampler is SEDD's Tweedie
:math:`\tau`-leaping (:func:`sedd_sample`).

Every function talks to ``denoise_fn(x_t, t, cond) -> o [B, L, V]``, ``t`` float32 ``[B]``.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxdiff._validation import (
    call_denoiser,
    check_choice,
    check_cond,
    check_float64,
    check_inpaint,
    check_int,
    check_logits,
    check_sequence_shape,
    check_times,
    check_tokens,
)
from jaxdiff.discrete.distributions import categorical
from jaxdiff.discrete.losses import sample_times

GRAPHS = ("absorbing", "uniform")
SIGMA_MIN, SIGMA_MAX = 1e-4, 20.0
"""SEDD's geometric noise for the uniform graph."""


@functools.partial(jax.tree_util.register_dataclass, data_fields=[],
                   meta_fields=["graph", "vocab_size", "mask_id"])
@dataclasses.dataclass(frozen=True)
class SEDDProcess:
    """A SEDD forward process; every field is static (a leafless pytree).

    Attributes:
      graph: ``"absorbing"`` or ``"uniform"``.
      vocab_size: ``V``: the ``N`` tokens (uniform), or ``N`` plus ``[MASK]`` (absorbing).
      mask_id: the ``[MASK]`` id (absorbing), None (uniform).
    """

    graph: str
    vocab_size: int
    mask_id: int | None


def sedd_process(graph: str, *, vocab_size: int, mask_id: int | None = None) -> SEDDProcess:
    """Builds a :class:`SEDDProcess`; ``mask_id`` is required for (only for) ``absorbing``."""
    check_choice("graph", graph, GRAPHS)
    vocab_size = check_int("vocab_size", vocab_size, 2)
    if (graph == "absorbing") != (mask_id is not None):
        raise ValueError(f"mask_id is required for the absorbing graph and only for it; got "
                         f"mask_id={mask_id!r} with graph={graph!r}")
    if mask_id is not None and not 0 <= check_int("mask_id", mask_id, 0) < vocab_size:
        raise ValueError(f"mask_id must lie in [0, vocab_size={vocab_size}), got {mask_id}")
    return SEDDProcess(graph=graph, vocab_size=vocab_size, mask_id=mask_id)


def _check_process(process) -> None:
    if not isinstance(process, SEDDProcess):
        raise TypeError(f"process must be a SEDDProcess (see sedd_process), "
                        f"got {type(process).__name__}")


def _num_tokens(process: SEDDProcess) -> int:
    """:math:`N`, the tokens the chain moves between (``[MASK]`` aside)."""
    return process.vocab_size - (process.mask_id is not None)


def total_noise(process: SEDDProcess, t) -> jax.Array:
    r""":math:`\bar\sigma(t)`: :math:`-\log(1 - t)` (absorbing) or
    :math:`\sigma_{min}^{1-t}\sigma_{max}^t` (uniform)."""
    if process.graph == "absorbing":
        return -jnp.log1p(-t)
    return SIGMA_MIN ** (1 - t) * SIGMA_MAX ** t


def noise_rate(process: SEDDProcess, t) -> jax.Array:
    r""":math:`\sigma(t) = \bar\sigma'(t)`: :math:`1 / (1 - t)` or
    :math:`\bar\sigma(t) \log(\sigma_{max} / \sigma_{min})`."""
    if process.graph == "absorbing":
        return 1.0 / (1.0 - t)
    return total_noise(process, t) * jnp.log(SIGMA_MAX / SIGMA_MIN)


def keep_probability(process: SEDDProcess, t) -> jax.Array:
    r""":math:`\alpha_t = e^{-\bar\sigma(t)}`: :math:`1 - t` (absorbing)."""
    if process.graph == "absorbing":
        return 1.0 - t
    return jnp.exp(-total_noise(process, t))


def sedd_q_sample(key, process: SEDDProcess, x0, t) -> jax.Array:
    r"""Draws :math:`x_t \sim p_{t|0}(\cdot | x_0)` per token: kept with probability
    :math:`\alpha_t`, else ``[MASK]`` (absorbing) or a uniform token (uniform, which may be
    :math:`x_0` again). ``x0 [B, L]``, ``t`` float32 ``[B]``; ``int32 [B, L]``."""
    _check_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_times("t", t, x0.shape[0])
    key_keep, key_token = jax.random.split(key)
    keep = jax.random.uniform(key_keep, x0.shape) < keep_probability(process, t)[:, None]
    if process.graph == "absorbing":
        noise = jnp.full(x0.shape, process.mask_id, jnp.int32)
    else:
        noise = jax.random.randint(key_token, x0.shape, 0, process.vocab_size, jnp.int32)
    return jnp.where(keep, x0, noise).astype(jnp.int32)


def log_score(process: SEDDProcess, output, t) -> jax.Array:
    r""":math:`\log s_\theta` from the network output ``o [B, L, V]`` at times ``t [B]``:
    :math:`o - \log(e^{\bar\sigma(t)} - 1) - \log N` (absorbing, SEDD's scaling) or
    :math:`o`."""
    output = output.astype(jnp.float32)
    if process.graph == "uniform":
        return output
    alpha = keep_probability(process, t)[:, None, None]
    # 1 - alpha floored: at t = 0 nothing is masked and no term reads the score, but an
    # infinite one would turn the loss's zero gradient into NaN
    return (output + jnp.log(alpha) - jnp.log(jnp.maximum(1 - alpha, 1e-30))
            - jnp.log(_num_tokens(process)))


def _xlogx_minus_x(r) -> jax.Array:
    """:math:`K(r) = r(\\log r - 1)`, with :math:`K(0) = 0`."""
    safe = jnp.where(r > 0, r, 1.0)
    return jnp.where(r > 0, r * (jnp.log(safe) - 1.0), 0.0)


def score_entropy_terms(process: SEDDProcess, log_s, x0, x_t, t) -> jax.Array:
    r"""The denoising score entropy at times ``t``, :math:`\sigma(t) \sum_\ell \sum_{y \ne
    x_t^\ell} Q(x_t^\ell, y)[s_y - r_y \log s_y + K(r_y)]` per example (module doc), nats.

    Absorbing: only masked positions have incoming rates (1 from every token), and
    :math:`r_y = \mathbb 1[y = x_0]\, \alpha_t / (1 - \alpha_t)`. Uniform: every position,
    rates :math:`1/N`, :math:`r_y = p_{t|0}(y | x_0) / p_{t|0}(x_t | x_0)`.

    Args:
      process: the SEDD process.
      log_s: ``float [B, L, V]`` log scores (:func:`log_score`); ``[MASK]``'s and the current
        token's entries are not read.
      x0, x_t: ``int [B, L]`` clean and noisy ids.
      t: float32 ``[B]`` in ``(0, 1)``.

    Returns:
      ``float32 [B]``.
    """
    _check_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_tokens("x_t", x_t, process.vocab_size, shape=x0.shape)
    check_logits("log_s", log_s, *x0.shape, process.vocab_size)
    check_times("t", t, x0.shape[0])
    vocab = jnp.arange(process.vocab_size)[None, None, :]
    alpha = keep_probability(process, t)[:, None, None]
    is_x0 = vocab == x0[..., None]
    log_s = log_s.astype(jnp.float32)
    if process.graph == "absorbing":
        ratio = jnp.where(is_x0, alpha / jnp.maximum(1 - alpha, 1e-30), 0.0)
        incoming = (x_t == process.mask_id)[..., None] & (vocab != process.mask_id)
        rate = incoming.astype(jnp.float32)
    else:
        n = process.vocab_size
        p_given_x0 = alpha * is_x0 + (1 - alpha) / n                        # p(y | x0)
        p_current = jnp.take_along_axis(p_given_x0, x_t[..., None], axis=-1)
        ratio = p_given_x0 / p_current
        rate = jnp.where(vocab == x_t[..., None], 0.0, 1.0 / n)
    # rate-0 entries (unmasked positions, the current token) never count; zeroing their log
    # score keeps an overflowing exp out of the gradient (0 * inf)
    log_s = jnp.where(rate > 0, log_s, 0.0)
    terms = jnp.exp(log_s) - ratio * log_s + _xlogx_minus_x(ratio)
    per_position = jnp.sum(jnp.where(rate > 0, rate * terms, 0.0), axis=-1)
    return noise_rate(process, t) * jnp.sum(per_position, axis=-1)


def sedd_prior_kl(process: SEDDProcess, x0) -> jax.Array:
    r""":math:`\sum_\ell D_{KL}(p_{1|0}(\cdot | x_0^\ell)\,\|\,p_{base})` in nats, ``[B]``: 0
    for absorbing (:math:`\alpha_1 = 0`); for uniform with :math:`a = \alpha_1`,
    :math:`(a + \tfrac{1-a}N)\log(Na + 1 - a) + (1 - a)\tfrac{N-1}N \log(1 - a)` per token."""
    _check_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    if process.graph == "absorbing":
        return jnp.zeros(x0.shape[0], jnp.float32)
    n, a = process.vocab_size, keep_probability(process, jnp.float32(1.0))
    per_token = ((a + (1 - a) / n) * jnp.log(n * a + 1 - a)
                 + (1 - a) * (n - 1) / n * jnp.log1p(-a))
    return jnp.full(x0.shape[0], x0.shape[1] * per_token, jnp.float32)


def _times(key, batch: int, antithetic: bool) -> jax.Array:
    """``[B]`` times in ``[0, 1)`` (the absorbing rate is infinite at 1; at 0 nothing is
    noised, so no term is read)."""
    return 1.0 - sample_times(key, batch, antithetic=antithetic)


def sedd_loss(key, denoise_fn, process: SEDDProcess, x0, *, cond=None, t=None,
              antithetic: bool = True) -> jax.Array:
    r"""SEDD's training loss: the denoising score entropy at one time per example
    (:func:`score_entropy_terms`), an unbiased estimate of the bound less its prior term.

    Args:
      key: PRNG key for ``t`` (unless given) and :math:`x_t`.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> o [B, L, V]``.
      process: the SEDD process.
      x0: clean ids ``int [B, L]``.
      cond: conditioning passed to ``denoise_fn`` (batch first).
      t: optional fixed float32 ``[B]`` times in ``[0, 1)``.
      antithetic: times on MDLM / MD4's shifted grid.

    Returns:
      ``float32 [B]`` nats.
    """
    _check_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    batch = x0.shape[0]
    check_cond(cond, batch)
    key_t, key_x = jax.random.split(key)
    t = _times(key_t, batch, antithetic) if t is None else t
    check_times("t", t, batch)
    x_t = sedd_q_sample(key_x, process, x0, t)
    output = call_denoiser(denoise_fn, x_t, t, cond, process.vocab_size)
    return score_entropy_terms(process, log_score(process, output, t), x0, x_t, t)


def sedd_elbo(key, denoise_fn, process: SEDDProcess, x0, *, num_samples: int = 128,
              cond=None) -> jax.Array:
    r"""The SEDD bound per example in nats: the score entropy by stratified Monte Carlo over
    time, :math:`t_j = (j + u)/S`, plus :func:`sedd_prior_kl`; unbiased, one ``lax.scan``."""
    _check_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    num_samples = check_int("num_samples", num_samples)
    batch = x0.shape[0]
    check_cond(cond, batch)
    key_u, key_x = jax.random.split(key)
    u = jax.random.uniform(key_u, (batch,), jnp.float32)

    def body(total, j):
        # (S - 1 + u) / S rounds to 1 in float32 for u within 2^-18 of 1 (S = 128), where
        # the absorbing rate is infinite; the integrand's limit there is finite
        t = jnp.minimum((j.astype(jnp.float32) + u) / num_samples, 1.0 - 2.0 ** -24)
        x_t = sedd_q_sample(jax.random.fold_in(key_x, j), process, x0, t)
        output = call_denoiser(denoise_fn, x_t, t, cond, process.vocab_size)
        terms = score_entropy_terms(process, log_score(process, output, t), x0, x_t, t)
        return total + terms, None

    total, _ = jax.lax.scan(body, jnp.zeros((batch,), jnp.float32),
                            jnp.arange(num_samples, dtype=jnp.int32))
    return total / num_samples + sedd_prior_kl(process, x0)


def tau_leaping_log_probs(process: SEDDProcess, output, x_t, t, s) -> jax.Array:
    r"""SEDD's Tweedie :math:`\tau`-leaping step from :math:`t` to :math:`s < t`, per position:

    .. math:: p(x_s^\ell = y | x_t) \propto
        \big[e^{-\Delta\bar\sigma Q} s_\theta^\ell\big]_y\, e^{\Delta\bar\sigma Q}(x_t^\ell, y),

    clipped at 0 (SEDD's clamp), with :math:`s^\ell_{x_t^\ell} = 1`. Written with
    :math:`\rho = \alpha_t / \alpha_s` (a per-row scale cancels): uniform,
    :math:`\max(0, s_y - (1 - \rho)\bar s)\,(\rho\,\mathbb 1[y = x_t] + \tfrac{1-\rho}N)`
    with :math:`\bar s = \tfrac1N \sum_v s_v`; absorbing from ``[MASK]``,
    :math:`\tfrac{\alpha_s - \alpha_t}{1 - \alpha_t} e^{o_y}` for a token and
    :math:`\max(0, 1 - \tfrac{\alpha_s - \alpha_t}{1 - \alpha_t}\sum_v e^{o_v})` for staying
    masked (finite at :math:`\alpha_t = 0`; :math:`e^{o_y}` stands for :math:`e^{o_y}/N`, the
    scaling of :func:`log_score`; at :math:`s = 0` staying masked has probability 0, SEDD's
    final denoising step); a token never leaves its value. ``output``
    ``[B, L, V]``, ``t``, ``s`` float32 scalars; log-probabilities ``[B, L, V]`` (unnormalised).
    """
    vocab = jnp.arange(process.vocab_size)[None, None, :]
    current = vocab == x_t[..., None]
    alpha_t, alpha_s = keep_probability(process, t), keep_probability(process, s)
    output = output.astype(jnp.float32)
    if process.graph == "absorbing":
        mask = vocab == process.mask_id
        step = (alpha_s - alpha_t) / (1 - alpha_t)
        tokens = jnp.where(mask, 0.0, step * jnp.exp(output) / _num_tokens(process))
        # a clean state holds no [MASK]: at s = 0 the draw is over the tokens alone (SEDD's
        # last, denoising step), however far the scores are from summing to one
        stay = jnp.where(alpha_s < 1, jnp.maximum(0.0, 1.0 - jnp.sum(tokens, axis=-1,
                                                                      keepdims=True)), 0.0)
        from_mask = jnp.where(mask, stay, tokens)
        probs = jnp.where((x_t == process.mask_id)[..., None], from_mask, current)
    else:
        rho = alpha_t / alpha_s
        score = jnp.where(current, 1.0, jnp.exp(output))
        mean_score = jnp.mean(score, axis=-1, keepdims=True)
        staggered = jnp.maximum(0.0, score - (1 - rho) * mean_score)
        probs = staggered * (rho * current + (1 - rho) / process.vocab_size)
    return jnp.log(probs)


def sedd_sample(key, denoise_fn, process: SEDDProcess, shape, *, num_steps: int, cond=None,
                float64: bool = False, inpaint_mask=None, inpaint_values=None) -> jax.Array:
    r"""SEDD's Tweedie :math:`\tau`-leaping sampler: from the prior at :math:`t = 1` (all
    ``[MASK]``, or uniform tokens) to :math:`t = 0` in ``num_steps`` uniform steps of
    :func:`tau_leaping_log_probs`, every position in parallel; step ``i`` draws with
    ``fold_in(key, i)`` (the prior with ``fold_in(key, num_steps)``). Known tokens are
    clamped after every step. With the absorbing graph it is masked diffusion's ancestral
    sampler (MDLM); the uniform graph's last state carries :math:`\bar\sigma(0) = 10^{-4}`
    of noise.

    Args:
      key: PRNG key.
      denoise_fn: ``denoise_fn(x_t, t, cond) -> o [B, L, V]``.
      process: the SEDD process.
      shape: ``(B, L)`` (static).
      num_steps: ``K >= 1`` (static).
      cond, float64, inpaint_mask, inpaint_values: as in
        :func:`jaxdiff.discrete.masked_sample`.

    Returns:
      ``int32 [B, L]`` ids, no ``[MASK]``.
    """
    _check_process(process)
    batch, length = check_sequence_shape(shape)
    check_cond(cond, batch)
    check_float64(float64)
    num_steps = check_int("num_steps", num_steps)
    known, values = check_inpaint(inpaint_mask, inpaint_values, (batch, length),
                                  process.vocab_size, process.mask_id)

    def clamp(x):
        return x if known is None else jnp.where(known, values, x)

    if process.graph == "absorbing":
        x = jnp.full((batch, length), process.mask_id, jnp.int32)
    else:
        x = jax.random.randint(jax.random.fold_in(key, num_steps), (batch, length), 0,
                               process.vocab_size, jnp.int32)

    def step(x, i):
        t = (num_steps - i).astype(jnp.float32) / num_steps
        s = (num_steps - 1 - i).astype(jnp.float32) / num_steps
        output = call_denoiser(denoise_fn, x, jnp.full((batch,), t), cond, process.vocab_size)
        log_probs = tau_leaping_log_probs(process, output, x, t, s)
        return clamp(categorical(jax.random.fold_in(key, i), log_probs, float64=float64)), None

    x, _ = jax.lax.scan(step, clamp(x), jnp.arange(num_steps, dtype=jnp.int32))
    return x
