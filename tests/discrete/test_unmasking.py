"""The masked-model samplers (MDLM's cache, semi-autoregressive blocks, ReMDM, LLaDA's
confidence order) with the tiny source's exact oracle: which of them must reproduce the
source, which orders they unmask in, and their named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd
from tests.discrete import oracles as o

NUM_SAMPLES = 65_536
TV_TOL = 0.02   # as in test_samplers
LOGLINEAR = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
COSINE = jd.masked_process("cosine", vocab_size=4, mask_id=o.MASK_ID)


def _sample(sampler, process=LOGLINEAR, seed=0, count=NUM_SAMPLES, fn=None, **options):
    fn = o.masked_oracle() if fn is None else fn
    return np.asarray(jax.jit(lambda k: sampler(k, fn, process, (count, o.LENGTH), **options))(
        jax.random.key(seed)))


@pytest.mark.parametrize("sampler, options", [
    (jd.masked_sample, dict(num_steps=100, cache=True)),
    (jd.masked_sample, dict(num_steps=8, block_length=1)),      # one position at a time, AR
    (jd.masked_sample, dict(num_steps=200, block_length=2)),
    (jd.remdm_sample, dict(num_steps=200, schedule="cap", eta=0.01)),
    (jd.confidence_sample, dict(num_steps=4, order="random")),  # any-order AR
    (jd.confidence_sample, dict(num_steps=4, order="random", block_length=2)),
], ids=["cached", "semi_ar_1", "semi_ar_2", "remdm_cap", "random_order",
        "random_order_blocks"])
def test_samplers_that_must_reproduce_the_source_do(sampler, options):
    """With the exact denoiser: MDLM's steps (cached or in blocks) tend to the source as the
    steps shrink, and so does ReMDM when its remasking probability shrinks with them (here
    1% a step, two remaskings per token in all); unmasking one token per step in any order is
    an any-order autoregressive draw with exact conditionals."""
    for process in (LOGLINEAR, COSINE):
        assert o.total_variation(_sample(sampler, process, **options)) < TV_TOL


def test_the_cache_skips_the_network_without_changing_a_draw():
    calls = []

    def counted(z, t, cond=None):
        jax.debug.callback(lambda: calls.append(1))
        return o.masked_oracle()(z, t)

    kwargs = dict(count=2, num_steps=100)
    plain = _sample(jd.masked_sample, **kwargs)
    cached = _sample(jd.masked_sample, fn=counted, cache=True, **kwargs)
    jax.effects_barrier()
    np.testing.assert_array_equal(plain, cached)
    # a step's prediction is recomputed only after a step that unmasked something
    assert len(calls) <= 2 * o.LENGTH + 1


def _two_phase_denoiser(z, t, cond=None):
    """Positions 0 and 1 are sure of token 1 and positions 2 and 3 unsure while everything is
    masked; once anything is unmasked every position is sure of token 2."""
    all_masked = jnp.all(z == o.MASK_ID, axis=1)[:, None, None]
    sure_1 = jnp.log(jnp.asarray([0.01, 0.97, 0.01, 0.01]))
    sure_2 = jnp.log(jnp.asarray([0.01, 0.01, 0.97, 0.01]))
    unsure = jnp.log(jnp.asarray([0.34, 0.33, 0.33, 0.0]) + 1e-9)
    first = jnp.stack([sure_1, sure_1, unsure, unsure])[None]
    return jnp.where(all_masked, first, sure_2[None, None]) * jnp.ones((z.shape[0], 1, 1))


def test_confidence_order_unmasks_the_most_confident_positions_first():
    samples = _sample(jd.confidence_sample, fn=_two_phase_denoiser, count=512, num_steps=2,
                      temperature=0.01)
    assert np.all(samples == np.array([1, 1, 2, 2]))
    random = _sample(jd.confidence_sample, fn=_two_phase_denoiser, count=512, num_steps=2,
                     order="random", temperature=0.01)
    assert 0.1 < np.mean(np.all(random == np.array([1, 1, 2, 2]), axis=1)) < 0.3  # 1 / 6


def test_semi_autoregressive_blocks_decode_left_to_right():
    """The first block is decoded while the second is still all [MASK]: with the two-phase
    denoiser, block 0 gets token 1 from the all-masked state only if it goes first."""
    samples = _sample(jd.masked_sample, fn=_two_phase_denoiser, count=256, num_steps=2,
                      block_length=2, temperature=0.01)
    assert np.all(samples[:, 2:] == 2) and np.mean(samples[:, :2] == 1) > 0.45


@pytest.mark.parametrize("sampler, options", [
    (jd.masked_sample, dict(num_steps=30, block_length=2, cache=True, top_p=0.9)),
    (jd.remdm_sample, dict(num_steps=30, schedule="rescale", eta=1.0)),
    (jd.remdm_sample, dict(num_steps=30, schedule="conf")),
    (jd.confidence_sample, dict(num_steps=4, block_length=2)),
])
def test_known_tokens_are_never_changed_and_nothing_stays_masked(sampler, options):
    known = np.array([[True, False, False, True]] * 64)
    values = np.array([[2, 0, 0, 1]] * 64)
    samples = _sample(sampler, count=64, inpaint_mask=known, inpaint_values=values, **options)
    assert np.all(samples[:, [0, 3]] == [2, 1]) and not np.any(samples == o.MASK_ID)


def test_remasking_sigmas_follow_the_schedules():
    t = 1 - np.arange(10) / 10
    s = t - 0.1
    alpha_t = 1 - t                                                 # loglinear
    sigma_max = np.minimum(1, s / np.where(alpha_t > 0, alpha_t, 1.0))
    sigma_max[alpha_t == 0] = 1.0
    np.testing.assert_allclose(jd.remasking_sigmas(LOGLINEAR, 10, schedule="rescale", eta=0.5),
                               0.5 * sigma_max, atol=1e-6)
    np.testing.assert_allclose(jd.remasking_sigmas(LOGLINEAR, 10, schedule="cap", eta=0.2),
                               np.minimum(0.2, sigma_max), atol=1e-6)


def test_conf_remasking_shares_sigma_max_by_the_softmax_of_negated_confidence():
    confidence = jnp.asarray([[0.9, 0.2, 0.5, 0.0], [0.3, 0.3, 0.0, 0.0]])
    decoded = jnp.asarray([[True, True, True, False], [True, True, False, False]])
    got = np.asarray(jd.unmasking.conf_sigmas(0.4, confidence, decoded))
    weights = np.exp(-np.array([0.9, 0.2, 0.5]))
    np.testing.assert_allclose(got[0], np.append(0.4 * weights / weights.sum(), 0.0),
                               rtol=1e-6)
    np.testing.assert_allclose(got[1], [0.2, 0.2, 0.0, 0.0], rtol=1e-6)
    nothing = jd.unmasking.conf_sigmas(0.4, confidence, jnp.zeros((2, 4), bool))
    assert np.all(np.asarray(nothing) == 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: jd.remasking_sigmas(LOGLINEAR, 10, schedule="rescale", eta=1.5), ValueError,
     r"eta=1.5 with schedule 'rescale' remasks with sigma > sigma_max at step 4 \(t=0.6\)"),
    (lambda: jd.remasking_sigmas(LOGLINEAR, 10, schedule="cap", eta=-0.1), ValueError,
     "eta must be a float >= 0"),
    (lambda: jd.remasking_sigmas(LOGLINEAR, 10, schedule="loop", eta=0.1), ValueError,
     "schedule must be one of"),
    (lambda: _sample(jd.confidence_sample, count=2, num_steps=4, order="margin"), ValueError,
     "order must be one of"),
    (lambda: _sample(jd.masked_sample, count=2, num_steps=4, block_length=3), ValueError,
     "block_length=3 must divide the sequence length 4"),
    (lambda: _sample(jd.masked_sample, count=2, num_steps=5, block_length=2), ValueError,
     "num_steps=5 must be a multiple of the number of blocks 2"),
    (lambda: _sample(jd.remdm_sample, count=2, num_steps=4, top_p=0.0), ValueError,
     r"top_p must be a float in \(0, 1\]"),
])
def test_bad_options_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
