"""Samplers with brute-force Bayes oracles reproduce the source's joint; inpainting; float64.

TV tolerance 0.02 on 65 536 samples: the sampling noise alone gives TV ~ 0.010 for this
source, and 100 steps add a factorisation bias of ~0.004 (measured with 4x the samples).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd
from tests.discrete import oracles as o

NUM_SAMPLES = 65_536
NUM_STEPS = 100
TV_TOL = 0.02


def _sample(sampler, fn, process, shape=(NUM_SAMPLES, o.LENGTH), seed=0, **kwargs):
    return np.asarray(jax.jit(lambda k: sampler(k, fn, process, shape, **kwargs))(
        jax.random.key(seed)))


def test_masked_sampler_reproduces_the_joint():
    process = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    samples = _sample(jd.masked_sample, o.masked_oracle(), process, num_steps=NUM_STEPS)
    assert o.total_variation(samples) < TV_TOL


def test_masked_sampler_in_one_step_draws_the_product_of_marginals():
    # All positions unmask together from the all-[MASK] state: the factorised oracle can only
    # give the product of the marginals, which is 0.534 away from the joint.
    process = jd.masked_process("cosine", vocab_size=4, mask_id=o.MASK_ID)
    samples = _sample(jd.masked_sample, o.masked_oracle(), process, num_steps=1)
    assert o.total_variation(samples) == pytest.approx(0.534, abs=TV_TOL)


def test_absorbing_d3pm_strided_sampler_reproduces_the_joint():
    process = jd.d3pm_process("absorbing", vocab_size=4, num_steps=1000, mask_id=o.MASK_ID)
    samples = _sample(jd.d3pm_sample, o.masked_oracle(), process, num_steps=NUM_STEPS)
    assert o.total_variation(samples) < TV_TOL


def test_uniform_d3pm_sampler_reproduces_the_joint():
    process = jd.d3pm_process("uniform", vocab_size=3, num_steps=NUM_STEPS)
    samples = _sample(jd.d3pm_sample, o.uniform_oracle(process), process)
    assert o.total_variation(samples) < TV_TOL


def test_masked_inpainting_samples_the_conditional():
    # Known x^0 = 0 and x^3 = 2: positions 1 and 2 must follow p(x^1, x^2 | x^0 = 0, x^3 = 2).
    process = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    num = 16_384
    values = np.tile(np.array([0, o.MASK_ID, o.MASK_ID, 2], np.int32), (num, 1))
    known = values != o.MASK_ID
    samples = _sample(jd.masked_sample, o.masked_oracle(), process, (num, o.LENGTH),
                      num_steps=NUM_STEPS, inpaint_mask=known, inpaint_values=values)
    assert np.all(samples[:, 0] == 0) and np.all(samples[:, 3] == 2)
    match = (o.SEQUENCES[:, 0] == 0) & (o.SEQUENCES[:, 3] == 2)
    conditional = o.PROBS[match] / o.PROBS[match].sum()
    middle = o.SEQUENCES[match][:, 1] * o.NUM_SYMBOLS + o.SEQUENCES[match][:, 2]
    counts = np.bincount(samples[:, 1] * o.NUM_SYMBOLS + samples[:, 2],
                         minlength=o.NUM_SYMBOLS ** 2)
    assert 0.5 * np.abs(counts[middle] / num - conditional).sum() < TV_TOL


@pytest.mark.parametrize("kind", ["masked", "absorbing", "uniform"])
def test_inpainting_never_changes_a_known_token(kind):
    num, length = 64, 12
    rng = np.random.default_rng(0)
    known = rng.random((num, length)) < 0.5  # any mask, different in every row
    if kind == "masked":
        process = jd.masked_process("cosine", vocab_size=5, mask_id=4)
        sampler, kwargs = jd.masked_sample, {"num_steps": 16}
    elif kind == "absorbing":
        process = jd.d3pm_process("absorbing", vocab_size=5, num_steps=20, mask_id=4)
        sampler, kwargs = jd.d3pm_sample, {}
    else:
        process = jd.d3pm_process("uniform", vocab_size=5, num_steps=20)
        sampler, kwargs = jd.d3pm_sample, {"num_steps": 7}
    values = np.where(known, rng.integers(0, 4, (num, length)), 4).astype(np.int32)
    # A denoiser that insists on token 0 everywhere would overwrite any unclamped position.
    table = jnp.asarray([10.0, -10.0, -10.0, -10.0, -10.0])

    def fn(x, t, cond=None):
        return jnp.broadcast_to(table, x.shape + (5,))

    out = _sample(sampler, fn, process, (num, length), inpaint_mask=known,
                  inpaint_values=values, **kwargs)
    np.testing.assert_array_equal(out[known], values[known])
    if kind != "uniform":
        assert not np.any(out == 4)  # every span filled, no [MASK] left
    assert np.mean(out[~known] == 0) > 0.95  # the free positions came from the denoiser


def test_float64_draws_are_float64_and_fail_loudly_without_x64():
    process = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    fn = o.masked_oracle()

    def sample(key):
        return jd.masked_sample(key, fn, process, (8, o.LENGTH), num_steps=4, float64=True)

    with pytest.raises(RuntimeError, match="enable_x64"):
        sample(jax.random.key(0))
    with jax.enable_x64(True):
        jaxpr = str(jax.make_jaxpr(sample)(jax.random.key(0)))
        out = np.asarray(jax.jit(sample)(jax.random.key(0)))
    # The uniforms come from 64-bit random bits; the weights and their cumulative sum are f64.
    assert "random_bits[bit_width=64" in jaxpr and "f64[8,4,4]" in jaxpr
    assert out.dtype == np.int32 and out.min() >= 0 and out.max() < o.NUM_SYMBOLS
    # float32 (the default) draws from 32-bit bits.
    jaxpr32 = str(jax.make_jaxpr(
        lambda k: jd.masked_sample(k, fn, process, (8, o.LENGTH), num_steps=4))(
        jax.random.key(0)))
    assert "bit_width=64" not in jaxpr32 and "f64" not in jaxpr32


@pytest.mark.parametrize("num_steps", [3, 7, 20, 100])
def test_masked_sampler_leaves_no_mask_for_any_step_count(num_steps):
    """The last step reaches s = 0 exactly (1 - 20/20 once rounded to -1.5e-8 in float32 and
    left ~5% of positions masked)."""
    process = jd.masked_process("loglinear", vocab_size=5, mask_id=4)

    def uniform_logits(z, t, cond=None):
        return jnp.zeros(z.shape + (5,), jnp.float32)

    out = jax.jit(lambda k: jd.masked_sample(k, uniform_logits, process, (64, 32),
                                             num_steps=num_steps))(jax.random.key(0))
    assert int(jnp.sum(out == 4)) == 0
