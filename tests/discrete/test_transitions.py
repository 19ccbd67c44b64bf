"""D3PM transitions against float64 NumPy references built from explicit V x V matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd

NUM_STEPS = 12
MARGINAL = np.array([0.5, 0.25, 0.15, 0.1])  # a non-uniform data marginal for V = 4

# (transition, schedule, vocab_size, mask_id, marginal)
CASES = [
    ("absorbing", "reciprocal", 5, 4, None),
    ("absorbing", "mutual_information", 5, 4, None),
    ("uniform", "cosine", 4, None, None),
    ("uniform", "mutual_information", 4, None, MARGINAL),
]
IDS = [f"{c[0]}-{c[1]}" for c in CASES]


def _process(case):
    transition, schedule, vocab, mask_id, marginal = case
    return jd.d3pm_process(transition, vocab_size=vocab, num_steps=NUM_STEPS,
                           schedule=schedule, mask_id=mask_id, marginal=marginal)


def _stationary(case) -> np.ndarray:
    """pi from the paper's definitions: e_[MASK] (absorbing) or 1/V (uniform)."""
    transition, _, vocab, mask_id, _ = case
    if transition == "absorbing":
        return np.eye(vocab)[mask_id]
    return np.full(vocab, 1.0 / vocab)


def _explicit_matrices(case, process):
    """Q_1..Q_T and Qbar_0..Qbar_T as explicit float64 V x V matrices (rows: from, cols: to)."""
    vocab = case[2]
    pi = _stationary(case)
    betas = np.asarray(process.betas, np.float64)
    steps = [(1 - b) * np.eye(vocab) + b * np.outer(np.ones(vocab), pi) for b in betas]
    cumulative = [np.eye(vocab)]
    for q in steps:
        cumulative.append(cumulative[-1] @ q)
    return steps, cumulative


def _data_tokens(case) -> np.ndarray:
    vocab, mask_id = case[2], case[3]
    return np.array([v for v in range(vocab) if v != mask_id], np.int32)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rows_sum_to_one_and_cumulative_is_the_product(case):
    process = _process(case)
    steps, cumulative = _explicit_matrices(case, process)
    for q in steps:
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-12)
    tokens = _data_tokens(case)
    t, x0 = (a.ravel() for a in np.meshgrid(np.arange(NUM_STEPS), tokens, indexing="ij"))
    probs = np.asarray(jax.jit(jd.q_probs)(process, x0[:, None], t))[:, 0]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)
    want = np.stack([cumulative[ti + 1][xi] for ti, xi in zip(t, x0, strict=True)])
    np.testing.assert_allclose(probs, want, atol=2e-6)


def test_schedules_match_their_definitions():
    T = NUM_STEPS
    steps = np.arange(1, T + 1)
    reciprocal = _process(CASES[0])
    np.testing.assert_allclose(reciprocal.betas, 1.0 / (T - steps + 1), rtol=1e-6)
    # The mutual-information schedule of absorbing is exactly the reciprocal one (D3PM).
    mi_absorbing = _process(CASES[1])
    np.testing.assert_allclose(np.exp(mi_absorbing.log_alpha_bars), 1 - np.arange(T + 1) / T,
                               atol=1e-6)
    # Uniform MI: I(x_t; x_0) from the explicit joint falls linearly to 0.
    case = CASES[3]
    _, cumulative = _explicit_matrices(case, _process(case))
    entropy = -(MARGINAL * np.log(MARGINAL)).sum()
    for k, qbar in enumerate(cumulative):
        joint = MARGINAL[:, None] * qbar
        p_t = joint.sum(axis=0)
        nz = joint > 0
        mi = (joint[nz] * np.log(joint[nz] / (MARGINAL[:, None] * p_t[None, :])[nz])).sum()
        assert abs(mi - (1 - k / T) * entropy) < 1e-5, k
    # Uniform cosine: alpha_bar_t = f(t) / f(0) with beta capped at 0.999.
    cosine = _process(CASES[2])
    f = np.cos((np.arange(T + 1) / T + 0.008) / 1.008 * np.pi / 2)
    np.testing.assert_allclose(np.exp(cosine.log_alpha_bars[:-1]), (f / f[0])[:-1], rtol=1e-5)
    assert float(cosine.betas[-1]) == pytest.approx(0.999)


def _possible_pairs(case, cumulative, k_from):
    """(x0, x_t) pairs, over data tokens x0, with q(x_t | x0) > 0 after ``k_from`` steps."""
    x0, xt = (a.ravel() for a in np.meshgrid(_data_tokens(case), np.arange(case[2]),
                                             indexing="ij"))
    possible = cumulative[k_from][x0, xt] > 0
    return x0[possible], xt[possible]


def _call_batched(fn, rows):
    """Concatenates per-step ``(args...)`` rows into one call; returns the probabilities."""
    cols = [np.concatenate(c) for c in zip(*rows, strict=True)]
    return np.exp(np.asarray(jax.jit(fn)(*cols)))[:, 0, :]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_posterior_is_bayes_rule(case):
    process = _process(case)
    steps, cumulative = _explicit_matrices(case, process)
    rows, want = [], []
    for t in range(NUM_STEPS):
        # q(x_t | x_{t+1}, x0) = Q_{t+1}[x_t, x_{t+1}] Qbar_t[x0, x_t] / Qbar_{t+1}[x0, x_{t+1}]
        x0, xt = _possible_pairs(case, cumulative, t + 1)
        want.append((steps[t][:, xt].T * cumulative[t][x0]) / cumulative[t + 1][x0, xt][:, None])
        rows.append((x0, xt, np.full(len(x0), t)))
    got = _call_batched(lambda x0, xt, t: jd.q_posterior_logits(
        process, jnp.asarray(x0[:, None]), jnp.asarray(xt[:, None]), jnp.asarray(t)), rows)
    np.testing.assert_allclose(got, np.concatenate(want), atol=2e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_model_posterior_is_the_x0_parameterisation(case):
    process = _process(case)
    steps, cumulative = _explicit_matrices(case, process)
    vocab, mask_id = case[2], case[3]
    rows, want = [], []
    for t in range(NUM_STEPS):
        xt = np.unique(_possible_pairs(case, cumulative, t + 1)[1])
        logits = np.asarray(jax.random.normal(jax.random.key(t), (len(xt), vocab)), np.float64)
        p_x0 = np.exp(logits)
        if mask_id is not None:  # clean data never hold [MASK]: its logit is ignored
            p_x0[:, mask_id] = 0.0
        p_x0 /= p_x0.sum(axis=1, keepdims=True)
        # p(x_t | x_{t+1}) ∝ sum_x0 q(x_t, x_{t+1} | x0) p(x0)
        #                 = Q_{t+1}[x_t, x_{t+1}] (p Qbar_t)[x_t]
        joint = steps[t][:, xt].T * (p_x0 @ cumulative[t])
        want.append(joint / joint.sum(axis=1, keepdims=True))
        rows.append((logits, xt, np.full(len(xt), t)))
    got = _call_batched(lambda logits, xt, t: jd.p_posterior_logits(
        process, jnp.asarray(logits[:, None, :], jnp.float32), jnp.asarray(xt[:, None]),
        jnp.asarray(t)), rows)
    np.testing.assert_allclose(got, np.concatenate(want), atol=2e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_skip_posterior_used_by_strided_sampling_is_bayes_rule(case):
    process = _process(case)
    steps, cumulative = _explicit_matrices(case, process)
    vocab = case[2]
    rows, want = [], []
    for k_from, k_to in [(NUM_STEPS, 7), (9, 3), (5, 0), (4, 3)]:
        skip = np.linalg.multi_dot([np.eye(vocab)] + steps[k_to:k_from])  # Q_{k_to+1} .. Q_{k_from}
        x0, xt = _possible_pairs(case, cumulative, k_from)
        want.append((skip[:, xt].T * cumulative[k_to][x0]) / cumulative[k_from][x0, xt][:, None])
        rows.append((x0, xt, np.full(len(x0), k_from), np.full(len(x0), k_to)))

    def call(x0, xt, k_from, k_to):
        log_onehot = jnp.where(jax.nn.one_hot(x0[:, None], vocab) > 0, 0.0, -jnp.inf)
        return jd.reverse_log_probs(process, log_onehot, jnp.asarray(xt[:, None]),
                                    jnp.asarray(k_from), jnp.asarray(k_to))

    np.testing.assert_allclose(_call_batched(call, rows), np.concatenate(want), atol=2e-6)


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_q_sample_frequencies_match_q_probs(case):
    process = _process(case)
    num = 40_000
    x0 = jnp.zeros((num, 1), jnp.int32)
    t = jnp.full((num,), NUM_STEPS // 2, jnp.int32)
    draws = np.asarray(jax.jit(jd.q_sample)(jax.random.key(3), process, x0, t))[:, 0]
    freq = np.bincount(draws, minlength=case[2]) / num
    np.testing.assert_allclose(freq, np.asarray(jd.q_probs(process, x0[:1], t[:1]))[0, 0],
                               atol=0.01)


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_loss_gradients_are_finite(case):
    process = _process(case)
    vocab = case[2]
    weights = jax.random.normal(jax.random.key(1), (vocab, vocab))
    x0 = jnp.asarray(np.resize(_data_tokens(case), (NUM_STEPS, 6)), jnp.int32)
    t = jnp.arange(NUM_STEPS, dtype=jnp.int32)  # every index, the decoder (t = 0) included

    def loss(w):
        return jd.d3pm_loss(jax.random.key(2), lambda x, t, c=None: w[x], process, x0,
                            t=t).mean()

    grad = jax.jit(jax.grad(loss))(weights)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).sum()) > 0
