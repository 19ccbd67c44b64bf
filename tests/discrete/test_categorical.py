"""The samplers' categorical draw (inverse CDF) against exact probabilities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxdiff.discrete import categorical

# Impossible tokens (-inf) first, in the middle and last; one rare token (p ~ 0.002).
PROBS = np.array([0.0, 0.3, 0.0, 0.2, 0.002, 0.398, 0.1, 0.0])
LOG_PROBS = np.where(PROBS > 0, np.log(np.where(PROBS > 0, PROBS, 1.0)), -np.inf)


def _draws(log_probs, num, seed, float64=False):
    rows = jnp.broadcast_to(jnp.asarray(log_probs), (num, len(log_probs)))
    # rows as an argument: closed over, XLA would constant-fold the draw's arithmetic
    return np.asarray(jax.jit(lambda k, r: categorical(k, r, float64=float64))(
        jax.random.key(seed), rows))


@pytest.mark.parametrize("float64", [False, True])
def test_frequencies_match_the_probabilities(float64):
    num = 400_000
    with jax.enable_x64(float64):
        x = _draws(LOG_PROBS, num, seed=0, float64=float64)
    counts = np.bincount(x, minlength=len(PROBS))
    assert x.dtype == np.int32
    assert counts[PROBS == 0].sum() == 0          # never an impossible token
    possible = PROBS > 0
    # chi-square goodness of fit over the possible tokens (5 cells, 4 degrees of freedom)
    assert stats.chisquare(counts[possible], num * PROBS[possible]).pvalue > 1e-4


def test_unnormalised_rows_and_a_single_possible_token():
    # a constant added to a row does not change the draws; a row with one finite entry
    # always draws it
    a = _draws(LOG_PROBS, 4096, seed=1)
    b = _draws(LOG_PROBS + 7.5, 4096, seed=1)
    np.testing.assert_array_equal(a, b)
    one = np.full(257, -np.inf)
    one[256] = 0.0
    assert np.all(_draws(one, 4096, seed=2) == 256)


def test_rows_are_independent_and_shaped_like_the_batch():
    log_probs = jnp.log(jnp.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    rows = jnp.broadcast_to(log_probs, (3000, 2, 3))
    x = np.asarray(categorical(jax.random.key(3), rows, float64=False))
    assert x.shape == (3000, 2)
    assert np.all(x[:, 1] == 2) and set(np.unique(x[:, 0])) == {0, 1}
    assert abs(np.mean(x[:, 0]) - 0.5) < 0.04      # 0.04 ~ 4.4 standard errors
