"""A tiny source with a known joint and brute-force Bayes x0-oracles for it.

The source: sequences of length L = 4 over 3 symbols from a sticky Markov chain, so the
positions are strongly dependent (the product of its marginals is 0.53 away from it in total
variation). Every one of its 3^4 = 81 sequences has positive probability.

The oracles compute p(x0^i | x_t) by enumerating all 81 sequences, in float64, and serve it as
a table lookup so that samplers and losses can call them under ``jit``.
"""

import itertools

import jax.numpy as jnp
import numpy as np

NUM_SYMBOLS = 3  # data symbols 0, 1, 2
LENGTH = 4
MASK_ID = 3  # for absorbing / masked processes, V = 4

_INITIAL = np.array([0.5, 0.3, 0.2])
_TRANSITION = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.15, 0.15, 0.7]])

SEQUENCES = np.array(list(itertools.product(range(NUM_SYMBOLS), repeat=LENGTH)), np.int32)
# All 16 mask patterns (True = masked) of the 4 positions.
PATTERNS = np.array(list(itertools.product([False, True], repeat=LENGTH)))


def state_index(x, base: int):
    """Row index of ``x [N, L]`` among ``itertools.product(range(base), repeat=L)``."""
    powers = jnp.asarray(base ** np.arange(LENGTH - 1, -1, -1), jnp.int32)
    return jnp.sum(x * powers[None, :], axis=-1)


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


def _marginals(weights):
    """``weights [S, 81]`` over sequences -> normalised per-position marginals ``[S, L, 3]``."""
    onehot = np.eye(NUM_SYMBOLS)[SEQUENCES]  # [81, L, 3]
    marg = np.einsum("sn,nlv->slv", weights, onehot)
    return marg / marg.sum(axis=-1, keepdims=True)


def markov_probs(initial, transition) -> np.ndarray:
    """The probabilities of the 81 sequences of a Markov chain (``[81]``, float64)."""
    initial, transition = np.asarray(initial, np.float64), np.asarray(transition, np.float64)
    return initial[SEQUENCES[:, 0]] * np.prod(transition[SEQUENCES[:, :-1], SEQUENCES[:, 1:]],
                                              axis=1)


PROBS = markov_probs(_INITIAL, _TRANSITION)
ENTROPY = float(-(PROBS * np.log(PROBS)).sum())  # nats per sequence


def masked_oracle_table(probs=None) -> np.ndarray:
    """``log p(x0^i | z)`` for every z in {0,1,2,[MASK]}^4: ``[256, L, 4]``, ``-inf`` on [MASK],
    under the source (or the law ``probs [81]`` over the sequences).

    Time-independent: a [MASK] carries no information about the token it hides.
    """
    probs = PROBS if probs is None else probs
    states = np.array(list(itertools.product(range(NUM_SYMBOLS + 1), repeat=LENGTH)))
    consistent = np.all((states[:, None, :] == MASK_ID)
                        | (states[:, None, :] == SEQUENCES[None, :, :]), axis=-1)
    marg = _marginals(consistent * probs[None, :])
    return np.concatenate([_log(marg), np.full(marg.shape[:-1] + (1,), -np.inf)], axis=-1)


def masked_oracle(table=None):
    """``denoise_fn(z, t, cond=None)`` for absorbing D3PM and masked diffusion (ignores ``t``)."""
    table = jnp.asarray(masked_oracle_table() if table is None else table, jnp.float32)
    return lambda z, t, cond=None: table[state_index(z, NUM_SYMBOLS + 1)]


def uniform_likelihood(alpha_bars) -> np.ndarray:
    """``q(x_t^l | x0^l)`` for every (x_t, x0) pair: ``[K, 81 (x_t), 81 (x0), L]``."""
    a = np.asarray(alpha_bars, np.float64)[:, None, None, None]
    same = SEQUENCES[:, None, :] == SEQUENCES[None, :, :]
    return a * same[None] + (1 - a) / NUM_SYMBOLS


def uniform_oracle_table(alpha_bars, *, leave_one_out: bool) -> np.ndarray:
    """Log oracles for the uniform transition at each level: ``[K, 81, L, 3]``.

    ``leave_one_out``: p(x0^i | x_t^{-i}), the posterior given the *other* positions, which is
    the x0 prediction that makes D3PM's x0-parameterised reverse step exact; otherwise the full
    posterior p(x0^i | x_t).
    """
    lik = uniform_likelihood(alpha_bars)
    full = np.prod(lik, axis=-1) * PROBS[None, None, :]
    out = np.empty(lik.shape[:2] + (LENGTH, NUM_SYMBOLS))
    for i in range(LENGTH):
        weights = full / lik[..., i] if leave_one_out else full
        marg = weights @ np.eye(NUM_SYMBOLS)[SEQUENCES[:, i]]  # [K, 81, 3]
        out[:, :, i, :] = marg / marg.sum(axis=-1, keepdims=True)
    return _log(out)


def uniform_oracle(process, *, leave_one_out: bool = True):
    """``denoise_fn(x_t, t, cond=None)`` for a uniform D3PM process over the 3 symbols."""
    alpha_bars = np.exp(np.asarray(process.log_alpha_bars, np.float64))[1:]
    table = jnp.asarray(uniform_oracle_table(alpha_bars, leave_one_out=leave_one_out),
                        jnp.float32)
    return lambda x, t, cond=None: table[t, state_index(x, NUM_SYMBOLS)]


def total_variation(samples, probs=None) -> float:
    """TV distance between the empirical law of ``samples [N, L]`` and the source (or the law
    ``probs [81]``)."""
    samples = np.asarray(samples)
    counts = np.bincount(np.asarray(state_index(samples, NUM_SYMBOLS)),
                         minlength=len(SEQUENCES))
    return 0.5 * float(np.abs(counts / len(samples) - (PROBS if probs is None else probs)).sum())
