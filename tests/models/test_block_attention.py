"""Block-causal attention and the block text transformer (BD3-LM): the masks against their
definitions, the two-stream pass against one pass per block, and the KV-cached block decoder
against the full block-causal pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff.models as jm
from jaxdiff.models.attention import BlockCausalMask, multi_head_attention
from tests.models.test_text_transformer import random_model

BLOCK = jm.TextTransformerConfig(vocab_size=11, max_length=12, hidden_size=32, depth=2,
                                 num_heads=4, dropout=0.0, block_size=3,
                                 time_conditioning=False)


def _reference_allowed(length: int, block_size: int, two_stream: bool) -> np.ndarray:
    """BD3-LM's masks written out query by query (its ``block_diff_mask``)."""
    allowed = np.zeros((length, length), bool)
    half = length // 2
    for q in range(length):
        for k in range(length):
            if not two_stream:
                allowed[q, k] = k // block_size <= q // block_size
                continue
            q_clean, k_clean = q >= half, k >= half
            qb, kb = (q % half) // block_size, (k % half) // block_size
            diagonal = qb == kb and q_clean == k_clean              # M_BD
            offset_causal = qb > kb and k_clean and not q_clean     # M_OBC
            causal = qb >= kb and k_clean and q_clean               # M_BC
            allowed[q, k] = diagonal or offset_causal or causal
    return allowed


@pytest.mark.parametrize("length, block_size, two_stream",
                         [(12, 1, False), (12, 3, False), (12, 12, False), (12, 2, True),
                          (16, 4, True), (8, 1, True)])
def test_masks_equal_their_definitions(length, block_size, two_stream):
    np.testing.assert_array_equal(BlockCausalMask(block_size, two_stream).allowed(length, length),
                                  _reference_allowed(length, block_size, two_stream))


@pytest.mark.parametrize("mask", [BlockCausalMask(3), BlockCausalMask(2, two_stream=True)])
@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_masked_attention_and_its_gradient_equal_the_reference(mask, chunk_bytes):
    keys = jax.random.split(jax.random.key(0), 3)
    q, k, v = (2.0 * jax.random.normal(key, (2, 12, 3, 8)) for key in keys)
    allowed = jnp.asarray(mask.allowed(12, 12))[None, None]

    def ours(q, k, v):
        return multi_head_attention(q, k, v, mask=mask, chunk_bytes=chunk_bytes)

    def reference(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, mask=allowed)

    np.testing.assert_allclose(ours(q, k, v), reference(q, k, v), atol=1e-5, rtol=0)
    grads = [jax.grad(lambda *a, f=f: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1, 2))(q, k, v)
             for f in (ours, reference)]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_causal_flag_and_a_mask_are_exclusive():
    q = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="not both"):
        multi_head_attention(q, q, q, causal=True, mask=BlockCausalMask(2))


def _tokens(seed: int, shape=(3, 12), mask_rate=0.5):
    x0 = jax.random.randint(jax.random.key(seed), shape, 0, 10)
    masked = jax.random.uniform(jax.random.key(seed + 1), shape) < mask_rate
    return x0, jnp.where(masked, 10, x0)


def test_two_stream_pass_equals_one_block_causal_pass_per_block():
    """Row block b of the two-stream pass = the single-stream model on [x0^{<b}, z_t^b]."""
    model = random_model(BLOCK)
    x0, z_t = _tokens(0)
    got = model(jm.TwoStream(noisy=z_t, clean=x0))
    assert got.shape == (3, 12, 11)
    for b in range(4):
        rows = slice(3 * b, 3 * b + 3)
        single = model(jnp.concatenate([x0[:, :3 * b], z_t[:, rows]], axis=1))
        np.testing.assert_allclose(got[:, rows], single[:, rows], atol=2e-5, rtol=0)


def test_block_rows_ignore_later_blocks_and_see_their_whole_block():
    model = random_model(BLOCK)
    x0, _ = _tokens(2)

    def logits_of_block_1(h):
        return jnp.sum(model.logits_from_embeddings(h)[:, 3:6])

    grad = jax.grad(logits_of_block_1)(model.embed(x0))
    norms = np.asarray(jnp.abs(grad).sum(axis=(0, 2)))
    assert np.all(norms[:6] > 0) and np.all(norms[6:] == 0)


def test_kv_cached_blocks_equal_the_block_causal_pass():
    model = random_model(BLOCK)
    x0, z_t = _tokens(4)
    cache = model.init_cache(3)
    for b in range(4):
        rows = slice(3 * b, 3 * b + 3)
        logits, _ = model.decode_block(z_t[:, rows], cache)      # a block being denoised
        full = model(jnp.concatenate([x0[:, :3 * b], z_t[:, rows]], axis=1))[:, rows]
        np.testing.assert_allclose(logits, full, atol=2e-5, rtol=0)
        _, cache = model.decode_block(x0[:, rows], cache)        # the block, finished
        assert int(cache.length) == 3 * b + 3


def test_block_model_errors_name_the_problem():
    model = random_model(BLOCK)
    x0, z_t = _tokens(6)
    with pytest.raises(ValueError, match="multiple of block_size=3"):
        model(jm.TwoStream(noisy=z_t[:, :10], clean=x0[:, :10]))
    with pytest.raises(ValueError, match="tokens must have shape"):
        model.decode_block(z_t[:, :2], model.init_cache(3))
    with pytest.raises(ValueError, match="needs a block model"):
        random_model(jm.TextTransformerConfig(vocab_size=11, max_length=12, hidden_size=32,
                                              depth=1, num_heads=4))(
            jm.TwoStream(noisy=z_t, clean=x0), jnp.ones(3))
    with pytest.raises(ValueError, match="block_size must be None for a causal model"):
        jm.TextTransformerConfig(vocab_size=11, max_length=12, causal=True, block_size=2)
