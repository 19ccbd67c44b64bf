"""Block diffusion (BD3-LM) against brute force on the tiny source and against its limits:
block size 1 is the autoregressive NLL, block size N the masked-diffusion ELBO; the sampler
reproduces the source with an exact oracle, skips the network only when that is exact, and
its KV-cached and uncached decoders give the same tokens."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff.models as jm
from jaxdiff import discrete as jd
from jaxdiff.discrete.distributions import categorical, x0_log_probs
from jaxdiff.discrete.masking import mask_probability, unmasking_log_probs
from tests.discrete import oracles as o
from tests.models.test_text_transformer import random_model

NUM_SAMPLES = 65_536
TV_TOL = 0.02   # as in test_samplers: sampling noise alone gives TV ~ 0.010 here


def _process(block_size, schedule="loglinear", vocab_size=4, mask_id=o.MASK_ID):
    return jd.block_process(schedule, vocab_size=vocab_size, mask_id=mask_id,
                            block_size=block_size)


def _two_stream_oracle(block_size: int):
    """The exact block denoiser of the source: block b's rows are p(x^l | x^{<b}, z^b), the
    masked oracle on [x^{<b}, z^b, [MASK]...] (a [MASK] tells nothing about its token)."""
    oracle = o.masked_oracle()

    def denoise_fn(tokens, t, cond=None):
        assert t is None
        rows = []
        for b in range(o.LENGTH // block_size):
            start, stop = b * block_size, (b + 1) * block_size
            state = jnp.concatenate([tokens.clean[:, :start], tokens.noisy[:, start:stop],
                                     jnp.full_like(tokens.noisy[:, stop:], o.MASK_ID)], axis=1)
            rows.append(oracle(state, None)[:, start:stop])
        return jnp.concatenate(rows, axis=1)

    return denoise_fn


@pytest.mark.parametrize("block_size", [1, 2, 4])
@pytest.mark.parametrize("schedule", ["loglinear", "cosine"])
def test_the_bound_of_the_exact_denoiser_is_the_exact_nll(block_size, schedule):
    """With the true conditionals every block's masked ELBO is tight (it averages the
    any-order autoregressive NLLs, each exact), so the block bound is -log p(x) for every
    block size and schedule: the stratified estimate agrees within 4 standard errors."""
    process = _process(block_size, schedule)
    fn = jax.jit(_two_stream_oracle(block_size))
    # interleaved rows: the loss's antithetic times run over the batch in order
    x0 = jnp.asarray(np.tile(o.SEQUENCES[[0, 40, 77]], (512, 1)))
    bound = np.asarray(jax.jit(lambda k: jd.block_elbo(k, fn, process, x0, num_samples=16))(
        jax.random.key(0))).reshape(512, 3).T
    exact = -np.log(o.PROBS[[0, 40, 77]])
    error = np.abs(bound.mean(axis=1) - exact)
    standard_error = bound.std(axis=1) / np.sqrt(512)
    assert np.all(error <= 4 * standard_error + 1e-4), (bound.mean(axis=1), exact)
    loss = np.asarray(jd.block_diffusion_loss(jax.random.key(1), fn, process, x0))
    loss = loss.reshape(512, 3).T
    error = np.abs(loss.mean(axis=1) - exact)
    assert np.all(error <= 4 * loss.std(axis=1) / np.sqrt(512) + 1e-4), (loss.mean(axis=1), exact)


BLOCK_NET = jm.TextTransformerConfig(vocab_size=11, max_length=6, hidden_size=32, depth=2,
                                     num_heads=4, dropout=0.0, block_size=1,
                                     time_conditioning=False)


def test_block_size_one_is_the_autoregressive_nll_exactly():
    """E over the masks of the block-1 integrand, at any block times, equals
    sum_b -log p(x_b | x_<b) of the same network (its masked position b given x_<b):
    enumerated over all 2^6 mask patterns."""
    model = random_model(BLOCK_NET, seed=3)
    process = _process(1, vocab_size=11, mask_id=10)
    x0 = jax.random.randint(jax.random.key(0), (2, 6), 0, 10)
    t_blocks = jnp.asarray([[0.3, 0.9, 0.5, 0.05, 1.0, 0.7]] * 2, jnp.float32)
    patterns = np.array(np.meshgrid(*[[False, True]] * 6)).reshape(6, -1).T   # [64, 6]
    expected = np.zeros(2)
    for pattern in patterns:
        z = jnp.where(jnp.asarray(pattern)[None], 10, x0)
        logits = model(jm.TwoStream(noisy=z, clean=x0))
        term = np.asarray(jd.block_elbo_terms(process, logits, x0, z, t_blocks), np.float64)
        t = np.asarray(t_blocks[0], np.float64)
        expected += term * np.prod(np.where(pattern, t, 1 - t))
    ar_nll = np.zeros(2)
    for b in range(6):
        query = jnp.concatenate([x0[:, :b], jnp.full((2, 1), 10, jnp.int32)], axis=1)
        log_p = jax.nn.log_softmax(model(query)[:, b, :10], axis=-1)
        ar_nll -= np.asarray(jnp.take_along_axis(log_p, x0[:, b:b + 1], axis=1)[:, 0])
    np.testing.assert_allclose(expected, ar_nll, rtol=1e-5)


def test_block_size_n_is_the_masked_diffusion_elbo():
    """One block of the whole sequence: the same loss and bound as masked diffusion, draw for
    draw (the same keys give the same times and masks)."""
    masked = jd.masked_process("loglinear", vocab_size=4, mask_id=o.MASK_ID)
    oracle = o.masked_oracle()
    x0 = jnp.asarray(o.SEQUENCES[::3])
    block_fn = _two_stream_oracle(o.LENGTH)
    for key in (jax.random.key(0), jax.random.key(5)):
        np.testing.assert_allclose(
            jd.block_diffusion_loss(key, block_fn, _process(o.LENGTH), x0),
            jd.masked_diffusion_loss(key, oracle, masked, x0), rtol=1e-6)
        np.testing.assert_allclose(
            jd.block_elbo(key, block_fn, _process(o.LENGTH), x0, num_samples=8),
            jd.masked_elbo(key, oracle, masked, x0, num_samples=8), rtol=1e-6)


def _oracle_samples(block_size, num_steps, seed=0, **options):
    process = _process(block_size)
    shape = (NUM_SAMPLES, o.LENGTH)

    @jax.jit
    def sample(key):
        decode_fn, state = jd.uncached_block_decoder(
            lambda x, c: o.masked_oracle()(x, None, c), shape, mask_id=o.MASK_ID)
        return jd.block_sample(key, decode_fn, state, process, shape, num_steps=num_steps,
                               **options)

    return np.asarray(sample(jax.random.key(seed)))


@pytest.mark.parametrize("block_size, num_steps", [(1, 1), (1, 7), (2, 100)])
def test_the_sampler_with_the_exact_denoiser_reproduces_the_source(block_size, num_steps):
    """Block 1 is ancestral AR sampling (exact for any step count); block 2 unmasks two tokens
    in one of 100 steps rarely enough for the factorised step to be nearly exact."""
    assert o.total_variation(_oracle_samples(block_size, num_steps)) < TV_TOL


def test_one_block_in_one_step_draws_the_product_of_marginals():
    samples = _oracle_samples(o.LENGTH, 1)
    assert o.total_variation(samples) == pytest.approx(0.534, abs=TV_TOL)


def test_inpainting_samples_the_conditional_given_the_left_and_the_block():
    known = np.array([False, True, False, False])
    values = np.array([0, 2, 0, 0])
    samples = _oracle_samples(
        2, 100, inpaint_mask=np.repeat(known[None], NUM_SAMPLES, 0),
        inpaint_values=np.repeat(values[None], NUM_SAMPLES, 0))
    assert np.all(samples[:, 1] == 2)
    keep = o.SEQUENCES[:, 1] == 2
    conditional = np.where(keep, o.PROBS, 0.0) / o.PROBS[keep].sum()
    counts = np.bincount(np.asarray(o.state_index(samples, o.NUM_SYMBOLS)), minlength=81)
    assert 0.5 * np.abs(counts / NUM_SAMPLES - conditional).sum() < TV_TOL


NET = jm.TextTransformerConfig(vocab_size=11, max_length=12, hidden_size=32, depth=2,
                               num_heads=4, dropout=0.0, block_size=3, time_conditioning=False)


def _decoders(model, shape):
    """The block model's KV cache, and the uncached decoder over its block-causal pass."""
    cached = (model.decode_block, model.init_cache(shape[0]))
    uncached = jd.uncached_block_decoder(lambda x, c: model(x, None, c), shape, mask_id=10)
    return cached, uncached


@pytest.mark.parametrize("options", [{}, {"top_p": 0.8, "temperature": 0.7}])
def test_kv_cached_generation_equals_uncached_token_for_token(options):
    model = random_model(NET, seed=1)
    process = _process(3, vocab_size=11, mask_id=10)
    shape = (4, 12)
    known = np.zeros(shape, bool)
    known[:, [1, 7]] = True
    inpaint = dict(inpaint_mask=known, inpaint_values=np.full(shape, 4))
    for extra in ({}, inpaint):
        out = [jd.block_sample(jax.random.key(2), decode_fn, state, process, shape, num_steps=5,
                               **options, **extra)
               for decode_fn, state in _decoders(model, shape)]
        np.testing.assert_array_equal(out[0], out[1])
        assert not np.any(np.asarray(out[0]) == 10)
        if extra:
            assert np.all(np.asarray(out[0])[:, [1, 7]] == 4)


def test_skipping_unchanged_steps_gives_the_tokens_of_a_sampler_that_never_skips():
    """A plain Python loop that calls the network at every step, with the sampler's keys."""
    model = random_model(NET, seed=2)
    process = _process(3, vocab_size=11, mask_id=10)
    key, shape, num_steps = jax.random.key(7), (2, 12), 30
    calls = []

    def counted(block, cache):
        jax.debug.callback(lambda: calls.append(1))
        return model.decode_block(block, cache)

    got = jax.jit(lambda: jd.block_sample(key, counted, model.init_cache(2), process, shape,
                                          num_steps=num_steps))()
    jax.effects_barrier()
    # the network runs only after a step that changed the block: at most once per token of
    # the batch's block plus the first step, and once more to append it (4 blocks of 2 x 3)
    assert len(calls) <= 4 * (2 * 3 + 1 + 1) < 4 * num_steps
    cache, blocks = model.init_cache(2), []
    for b in range(4):
        z = jnp.full((2, 3), 10, jnp.int32)
        for i in range(num_steps):
            logits, _ = model.decode_block(z, cache)
            t, s = (num_steps - i) / num_steps, (num_steps - 1 - i) / num_steps
            ratio = mask_probability(process.masked, jnp.float32(s)) / mask_probability(
                process.masked, jnp.float32(t))
            log_probs = unmasking_log_probs(x0_log_probs(logits, 10), ratio, 10)
            draw = categorical(jax.random.fold_in(jax.random.fold_in(key, b), i), log_probs,
                               float64=False)
            z = jnp.where(z == 10, draw, z)
        _, cache = model.decode_block(z, cache)
        blocks.append(z)
    np.testing.assert_array_equal(got, jnp.concatenate(blocks, axis=1))


def test_bad_input_is_named():
    model = random_model(NET)
    process = _process(3, vocab_size=11, mask_id=10)
    sample = functools.partial(jd.block_sample, jax.random.key(0), model.decode_block,
                               model.init_cache(2), process, num_steps=2)
    with pytest.raises(ValueError, match="block_size=3 must divide the sequence length 10"):
        sample((2, 10))
    with pytest.raises(ValueError, match=r"top_p must be a float in \(0, 1\]"):
        sample((2, 12), top_p=0.0)
    with pytest.raises(ValueError, match=r"top_p must be a float in \(0, 1\]"):
        sample((2, 12), top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
        sample((2, 12), temperature=-1.0)
    with pytest.raises(ValueError, match="block_size=3 must divide the sequence length 4"):
        jd.block_diffusion_loss(jax.random.key(0), _two_stream_oracle(2), process,
                                jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        _process(0)
    with pytest.raises(TypeError, match="process must be a BlockProcess"):
        jd.block_elbo(jax.random.key(0), _two_stream_oracle(2),
                      jd.masked_process(vocab_size=4, mask_id=3), jnp.zeros((2, 4), jnp.int32))


def test_generation_ends_once_every_sequence_has_its_stop_token():
    """A decoder sure of token 1 in the first block and of the stop token 2 after it: the
    output is a block of 1s then 2s, and no block after the second is ever drawn."""
    process = _process(2)
    seen = []

    def decode_fn(block, position):
        jax.debug.callback(lambda p: seen.append(int(p)), position)
        token = jnp.where(position >= 2, 2, 1)
        logits = jnp.where(jnp.arange(4) == token, 0.0, -30.0)
        return jnp.broadcast_to(logits, block.shape + (4,)), position + 2

    out = jax.jit(lambda key: jd.block_sample(key, decode_fn, jnp.zeros((), jnp.int32),
                                              process, (3, 8), num_steps=2, stop_id=2))(
        jax.random.key(0))
    jax.effects_barrier()
    np.testing.assert_array_equal(out, np.array([[1, 1, 2, 2, 2, 2, 2, 2]] * 3))
    assert max(seen) == 2      # decoding never started the third block (position 4)
    with pytest.raises(ValueError, match="stop_id must be a token id"):
        jd.block_sample(jax.random.key(0), decode_fn, jnp.zeros((), jnp.int32), process,
                        (3, 8), num_steps=2, stop_id=o.MASK_ID)


def test_a_kv_cache_too_short_and_stop_with_inpainting_are_named():
    model = random_model(NET)
    process = _process(3, vocab_size=11, mask_id=10)
    with pytest.raises(ValueError, match="the KV cache holds 12 positions, fewer than the 15"):
        jd.block_sample(jax.random.key(0), model.decode_block, model.init_cache(2), process,
                        (2, 15), num_steps=2)
    known = np.zeros((2, 12), bool)
    known[:, 0] = True
    with pytest.raises(ValueError, match="stop_id and inpainting do not go together"):
        jd.block_sample(jax.random.key(0), model.decode_block, model.init_cache(2), process,
                        (2, 12), num_steps=2, stop_id=3, inpaint_mask=known,
                        inpaint_values=np.ones((2, 12), np.int32))
