r"""D3PM forward processes (Austin et al. 2021): absorbing and uniform transitions.

Both transitions mix the current token with a fixed distribution :math:`\pi` over the ``V``
token ids (rows are "from", columns "to"):

.. math::
    Q_t = (1-\beta_t)\, I + \beta_t\, \mathbf 1 \pi^\top, \qquad
    \bar Q_t = Q_1 Q_2 \cdots Q_t = \bar\alpha_t\, I + (1-\bar\alpha_t)\, \mathbf 1 \pi^\top,
    \qquad \bar\alpha_t = \prod_{s \le t} (1 - \beta_s),

with :math:`\pi = e_m` (the ``[MASK]`` id :math:`m`) for **absorbing** and
:math:`\pi = \mathbf 1 / V` for **uniform**. The closed form of :math:`\bar Q_t` holds because
:math:`\pi^\top \mathbf 1 = 1`; likewise the skip used by strided sampling is
:math:`Q_{t|s} = Q_{s+1} \cdots Q_t = (\bar\alpha_t/\bar\alpha_s) I
+ (1 - \bar\alpha_t/\bar\alpha_s) \mathbf 1\pi^\top`. No ``V x V``
matrix is ever built: every quantity is a one-hot row, :math:`\pi`, and two scalars.

**Index convention** (as in :mod:`jaxdiff.gaussian`): ``t = 0 .. T-1`` indexes the paper's step
:math:`t+1`, so the state :math:`x_t` at index ``t`` is the data after ``t + 1`` corruption
steps, and ``denoise_fn`` receives that index. Clean data sit before index 0. Step counts
``k = 0 .. T`` (``k = t + 1``) appear only in :attr:`D3PMProcess.log_alpha_bars`.

**Schedules** (``schedule=``):

- ``reciprocal``: :math:`\beta_t = (T - t + 1)^{-1}` (Sohl-Dickstein et al. 2015; the "jsd"
  schedule of the D3PM code), so :math:`\bar\alpha_t = 1 - t/T`. Default for absorbing.
- ``cosine``: :math:`\bar\alpha_t = f(t)/f(0)`, :math:`f(t) = \cos\big(\tfrac{t/T + s}{1 + s}
  \tfrac\pi2\big)`, :math:`s = 0.008`, with :math:`\beta_t` capped at 0.999 (Hoogeboom et al.
  2021, as used by D3PM for uniform). Default for uniform.
- ``mutual_information``: :math:`\bar\alpha_t` such that
  :math:`I(x_t; x_0) = (1 - t/T)\, H(x_0)` for a data marginal :math:`p(x_0)` (D3PM).
  For absorbing it reduces exactly to ``reciprocal``.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import (
    check_choice,
    check_int,
    check_logits,
    check_timesteps,
    check_tokens,
)
from jaxdiff.discrete.distributions import log_softmax_excluding

TRANSITIONS = ("absorbing", "uniform")
SCHEDULES = ("reciprocal", "cosine", "mutual_information")
_DEFAULT_SCHEDULE = {"absorbing": "reciprocal", "uniform": "cosine"}


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["betas", "log_alpha_bars", "stationary"],
                   meta_fields=["transition", "mask_id"])
@dataclasses.dataclass(frozen=True, eq=False)
class D3PMProcess:
    r"""A D3PM forward process: a frozen pytree of arrays plus two static fields.

    Attributes:
      betas: ``float32 [T]``; ``betas[t]`` is the paper's :math:`\beta_{t+1}`.
      log_alpha_bars: ``float32 [T + 1]``; ``log_alpha_bars[k]`` is :math:`\log\bar\alpha_k`
        after ``k`` steps (``k = 0``: 0; ``-inf`` where :math:`\bar\alpha_k = 0`). Computed
        in float64 so that differences of neighbours keep :math:`\beta_t` accurate.
      stationary: ``float32 [V]``, the distribution :math:`\pi` that :math:`Q_t` mixes in.
      transition: ``"absorbing"`` or ``"uniform"`` (static).
      mask_id: the ``[MASK]`` id for absorbing, ``None`` for uniform (static).
    """

    betas: jax.Array
    log_alpha_bars: jax.Array
    stationary: jax.Array
    transition: str
    mask_id: int | None

    @property
    def num_steps(self) -> int:
        """``T`` (static)."""
        return self.betas.shape[0]

    @property
    def vocab_size(self) -> int:
        """``V``, ``[MASK]`` included for absorbing (static)."""
        return self.stationary.shape[0]


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def _mutual_information(alpha_bars: np.ndarray, marginal: np.ndarray,
                        stationary: np.ndarray) -> np.ndarray:
    r""":math:`I(x_t; x_0)` for :math:`\bar Q = \bar\alpha I + (1-\bar\alpha)\mathbf 1\pi^\top`,
    vectorised over ``alpha_bars [N]`` in :math:`O(NV)` (float64).

    With :math:`p_j = \bar\alpha m_j + (1-\bar\alpha)\pi_j`, off-diagonal entries
    :math:`c_j = (1-\bar\alpha)\pi_j` and diagonal :math:`d_i = \bar\alpha + c_i`:

    .. math:: I = \sum_i m_i\Big(\sum_j c_j\log\tfrac{c_j}{p_j} - c_i\log\tfrac{c_i}{p_i}
        + d_i\log\tfrac{d_i}{p_i}\Big).
    """
    a = alpha_bars[:, None]
    p = a * marginal[None, :] + (1 - a) * stationary[None, :]
    c = (1 - a) * stationary[None, :]
    d = a + c

    def xlogx_over(x, y):
        positive = x > 0
        return np.where(positive, x * np.log(np.where(positive, x, 1.0)
                                             / np.where(positive, y, 1.0)), 0.0)

    off = xlogx_over(c, p)
    rows = marginal > 0  # rows of zero mass (the [MASK] of absorbing) contribute nothing
    per_row = off.sum(axis=1, keepdims=True) - off[:, rows] + xlogx_over(d[:, rows], p[:, rows])
    return (per_row * marginal[None, rows]).sum(axis=1)


def _alpha_bars(schedule: str, num_steps: int, marginal: np.ndarray,
                stationary: np.ndarray) -> np.ndarray:
    """:math:`\\bar\\alpha_k`, ``k = 0 .. T``, float64."""
    k = np.arange(num_steps + 1, dtype=np.float64)
    if schedule == "reciprocal":
        return 1.0 - k / num_steps
    if schedule == "cosine":
        s = 0.008
        f = np.cos((k / num_steps + s) / (1 + s) * np.pi / 2)
        betas = np.minimum(1.0 - f[1:] / f[:-1], 0.999)
        return np.concatenate([[1.0], np.cumprod(1.0 - betas)])
    # mutual_information: bisection on the monotone map alpha_bar -> I(x_t; x_0).
    target = (1.0 - k / num_steps) * _entropy(marginal)
    lo, hi = np.zeros_like(k), np.ones_like(k)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        above = _mutual_information(mid, marginal, stationary) > target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    alpha_bars = 0.5 * (lo + hi)
    alpha_bars[0], alpha_bars[-1] = 1.0, 0.0
    return alpha_bars


def d3pm_process(transition: str, *, vocab_size: int, num_steps: int,
                 schedule: str | None = None, mask_id: int | None = None,
                 marginal=None) -> D3PMProcess:
    r"""Builds a :class:`D3PMProcess` (schedules computed in float64, stored as float32).

    Args:
      transition: ``"absorbing"`` (each token moves to ``[MASK]`` with probability
        :math:`\beta_t`) or ``"uniform"`` (moves to a uniformly drawn id, itself included).
      vocab_size: ``V``; for absorbing it includes the ``[MASK]`` id.
      num_steps: ``T``.
      schedule: ``reciprocal``, ``cosine`` or ``mutual_information``; default ``reciprocal``
        for absorbing, ``cosine`` for uniform. Absorbing needs :math:`\bar\alpha_T = 0` (its
        prior is all ``[MASK]``), so it rejects ``cosine``.
      mask_id: the ``[MASK]`` id in ``[0, V)``; required for absorbing, rejected for uniform.
      marginal: ``[V]`` data marginal :math:`p(x_0)` for ``mutual_information`` (default:
        uniform over the data tokens; zero on ``[MASK]`` for absorbing).

    Returns:
      The process.
    """
    check_choice("transition", transition, TRANSITIONS)
    vocab_size = check_int("vocab_size", vocab_size, 2)
    num_steps = check_int("num_steps", num_steps)
    schedule = _DEFAULT_SCHEDULE[transition] if schedule is None else schedule
    check_choice("schedule", schedule, SCHEDULES)
    if transition == "absorbing":
        if mask_id is None:
            raise ValueError("mask_id is required for the absorbing transition")
        mask_id = check_int("mask_id", mask_id, 0)
        if mask_id >= vocab_size:
            raise ValueError(f"mask_id must lie in [0, vocab_size={vocab_size}), got {mask_id}")
        if schedule == "cosine":
            raise ValueError("schedule='cosine' leaves alpha_bar_T > 0, but the absorbing prior "
                             "is all [MASK]; use 'reciprocal' or 'mutual_information'")
        stationary = np.zeros(vocab_size)
        stationary[mask_id] = 1.0
    else:
        if mask_id is not None:
            raise ValueError(f"mask_id is only for the absorbing transition, got {mask_id!r}")
        stationary = np.full(vocab_size, 1.0 / vocab_size)
    if marginal is not None and schedule != "mutual_information":
        raise ValueError("marginal is only used by schedule='mutual_information'")
    if marginal is None:
        marginal = np.ones(vocab_size)
        if mask_id is not None:
            marginal[mask_id] = 0.0
        marginal /= marginal.sum()
    else:
        marginal = np.asarray(marginal, dtype=np.float64)
        if (marginal.shape != (vocab_size,) or np.any(marginal < 0)
                or abs(marginal.sum() - 1.0) > 1e-6):
            raise ValueError(f"marginal must be a probability vector of shape ({vocab_size},), "
                             f"got shape {marginal.shape} summing to {marginal.sum():.6g}")
        if mask_id is not None and marginal[mask_id] > 0:
            raise ValueError("marginal must be 0 at mask_id: clean data never hold [MASK]")
    alpha_bars = _alpha_bars(schedule, num_steps, marginal, stationary)
    with np.errstate(divide="ignore"):
        log_alpha_bars = np.log(alpha_bars)
    betas = -np.expm1(log_alpha_bars[1:] - log_alpha_bars[:-1])
    return D3PMProcess(betas=jnp.asarray(betas, jnp.float32),
                       log_alpha_bars=jnp.asarray(log_alpha_bars, jnp.float32),
                       stationary=jnp.asarray(stationary, jnp.float32),
                       transition=transition, mask_id=mask_id)


def check_d3pm_process(process) -> None:
    """Raises ``TypeError`` unless ``process`` is a :class:`D3PMProcess`."""
    if not isinstance(process, D3PMProcess):
        raise TypeError(f"process must be a D3PMProcess (see d3pm_process), "
                        f"got {type(process).__name__}")


def _expand(v):
    """``[B] -> [B, 1, 1]``."""
    return v[:, None, None]


def q_probs(process: D3PMProcess, x0, t) -> jax.Array:
    r"""The marginal :math:`q(x_t | x_0) = \mathrm{Cat}(\bar\alpha_t e_{x_0} +
    (1-\bar\alpha_t)\pi)` (row :math:`x_0` of :math:`\bar Q_t`).

    Args:
      process: the forward process.
      x0: clean token ids ``int [B, L]``.
      t: ``int32 [B]`` indices in ``[0, T)`` (``t + 1`` steps).

    Returns:
      ``float32 [B, L, V]`` probabilities.
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_timesteps("t", t, x0.shape[0], process.num_steps)
    alpha_bar = _expand(jnp.exp(process.log_alpha_bars[t + 1]))
    onehot = jax.nn.one_hot(x0, process.vocab_size, dtype=jnp.float32)
    return alpha_bar * onehot + (1.0 - alpha_bar) * process.stationary[None, None, :]


def q_sample(key, process: D3PMProcess, x0, t) -> jax.Array:
    r"""Draws :math:`x_t \sim q(x_t | x_0)`: keep :math:`x_0` with probability
    :math:`\bar\alpha_t`, otherwise draw from :math:`\pi`.

    Args:
      key: PRNG key.
      process: the forward process.
      x0: clean token ids ``int [B, L]``.
      t: ``int32 [B]`` indices in ``[0, T)``.

    Returns:
      ``int32 [B, L]`` noisy ids.
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_timesteps("t", t, x0.shape[0], process.num_steps)
    key_keep, key_noise = jax.random.split(key)
    alpha_bar = jnp.exp(process.log_alpha_bars[t + 1])[:, None]
    keep = jax.random.uniform(key_keep, x0.shape) < alpha_bar
    return jnp.where(keep, x0, draw_stationary(key_noise, process, x0.shape)).astype(jnp.int32)


def draw_stationary(key, process: D3PMProcess, shape) -> jax.Array:
    r"""``int32`` ids of ``shape`` drawn from :math:`\pi`: all ``[MASK]`` for absorbing,
    uniform over the ``V`` ids for uniform."""
    if process.transition == "absorbing":
        return jnp.full(shape, process.mask_id, jnp.int32)
    return jax.random.randint(key, shape, 0, process.vocab_size, dtype=jnp.int32)


def _logaddexp(a, b):
    """``logaddexp`` whose gradient is 0, not NaN, where both arguments are ``-inf``."""
    both = (a == -jnp.inf) & (b == -jnp.inf)
    out = jnp.logaddexp(jnp.where(both, 0.0, a), jnp.where(both, 0.0, b))
    return jnp.where(both, -jnp.inf, out)


def reverse_log_probs(process: D3PMProcess, log_p_x0, x_t, k_from, k_to) -> jax.Array:
    r"""Log-probabilities of the state after ``k_to`` steps given :math:`x_t` after ``k_from``
    steps and a distribution :math:`p(x_0)` (step counts, ``0 <= k_to < k_from <= T``).

    D3PM's x0-parameterisation, generalised to a skip of several steps:

    .. math::
        p(x_s | x_t) \propto \sum_{x_0} q(x_s, x_t | x_0)\, p(x_0)
        = Q_{t|s}[x_s, x_t]\, \big(p^\top \bar Q_s\big)[x_s],

    with :math:`Q_{t|s}[\cdot, x_t] = r\, e_{x_t} + (1 - r)\pi_{x_t}`,
    :math:`r = \bar\alpha_t/\bar\alpha_s`, and
    :math:`p^\top\bar Q_s = \bar\alpha_s p + (1 - \bar\alpha_s)\pi`. A one-hot :math:`p` gives
    the true posterior :math:`q(x_s | x_t, x_0)`.

    Args:
      process: the forward process.
      log_p_x0: ``float [B, L, V]`` normalised :math:`\log p(x_0)`.
      x_t: ``int [B, L]`` ids after ``k_from`` steps.
      k_from: ``int [B]`` step counts of ``x_t``.
      k_to: ``int [B]`` step counts of the target, ``< k_from``.

    Returns:
      ``float32 [B, L, V]`` normalised log-probabilities.
    """
    check_d3pm_process(process)
    check_tokens("x_t", x_t, process.vocab_size)
    batch, length = x_t.shape
    check_logits("log_p_x0", log_p_x0, batch, length, process.vocab_size)
    check_timesteps("k_from", k_from, batch, process.num_steps + 1)
    check_timesteps("k_to", k_to, batch, process.num_steps + 1)
    vocab = process.vocab_size
    log_alpha_bars = process.log_alpha_bars
    log_r = _expand(log_alpha_bars[k_from] - log_alpha_bars[k_to])
    onehot = jax.nn.one_hot(x_t, vocab, dtype=jnp.float32)
    pi_xt = process.stationary[x_t][..., None]
    fact1 = jnp.exp(log_r) * onehot - jnp.expm1(log_r) * pi_xt
    log_ab_s = _expand(log_alpha_bars[k_to])
    log_1m_ab_s = jnp.log(-jnp.expm1(log_ab_s))
    log_fact2 = _logaddexp(log_ab_s + log_p_x0,
                           log_1m_ab_s + jnp.log(process.stationary)[None, None, :])
    return jax.nn.log_softmax(jnp.log(fact1) + log_fact2, axis=-1)


def q_posterior_logits(process: D3PMProcess, x0, x_t, t) -> jax.Array:
    r"""The true posterior :math:`\log q(x_{t-1} | x_t, x_0)` (D3PM).

    .. math::
        q(x_{t-1} | x_t, x_0) = \frac{Q_t[x_{t-1}, x_t]\; \bar Q_{t-1}[x_0, x_{t-1}]}
        {\bar Q_t[x_0, x_t]}

    Args:
      process: the forward process.
      x0: clean ids ``int [B, L]``.
      x_t: ids ``int [B, L]`` at index ``t`` (after ``t + 1`` steps).
      t: ``int32 [B]`` in ``[0, T)``; the result is over the state after ``t`` steps (the
        clean data for ``t = 0``, where it is one-hot at ``x0``).

    Returns:
      ``float32 [B, L, V]`` normalised log-probabilities (``-inf`` where impossible).
    """
    check_d3pm_process(process)
    check_tokens("x0", x0, process.vocab_size, mask_id=process.mask_id)
    check_tokens("x_t", x_t, process.vocab_size, shape=x0.shape)
    check_timesteps("t", t, x0.shape[0], process.num_steps)
    onehot = jax.nn.one_hot(x0, process.vocab_size, dtype=jnp.float32)
    log_onehot = jnp.where(onehot > 0, 0.0, -jnp.inf)
    return reverse_log_probs(process, log_onehot, x_t, t + 1, t)


def p_posterior_logits(process: D3PMProcess, x0_logits, x_t, t) -> jax.Array:
    r"""The model's reverse step :math:`\log p_\theta(x_{t-1} | x_t)` from predicted x0 logits.

    D3PM's x0-parameterisation:

    .. math::
        p_\theta(x_{t-1} | x_t) \propto \sum_{\tilde x_0} q(x_{t-1}, x_t | \tilde x_0)\,
        \tilde p_\theta(\tilde x_0 | x_t),

    applied at every index, ``t = 0`` included (there it is the decoder
    :math:`p_\theta(x_0 | x_1) \propto Q_1[x_0, x_1]\, \tilde p_\theta(x_0 | x_1)`). For
    absorbing, the ``[MASK]`` logit of ``x0_logits`` is ignored (clean data never hold it).

    Note that the weight :math:`q(x_t | \tilde x_0)` inside the sum re-counts the evidence of
    the position's own noisy token: the :math:`\tilde p` that makes this step exact is the
    posterior of :math:`x_0^i` given the *other* positions of :math:`x_t`. For absorbing that
    equals :math:`q(x_0^i | x_t)`; for uniform it does not.

    Args:
      process: the forward process.
      x0_logits: ``float [B, L, V]`` logits of :math:`\tilde p_\theta(x_0 | x_t)`.
      x_t: ids ``int [B, L]`` at index ``t``.
      t: ``int32 [B]`` in ``[0, T)``.

    Returns:
      ``float32 [B, L, V]`` normalised log-probabilities.
    """
    check_d3pm_process(process)
    check_tokens("x_t", x_t, process.vocab_size)
    batch, length = x_t.shape
    check_logits("x0_logits", x0_logits, batch, length, process.vocab_size)
    check_timesteps("t", t, batch, process.num_steps)
    log_p_x0 = log_softmax_excluding(x0_logits.astype(jnp.float32), process.mask_id)
    return reverse_log_probs(process, log_p_x0, x_t, t + 1, t)
