"""multi_head_attention (FlashAttention-style, chunked over rows) against XLA's reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdiff.models.attention import (
    ATTENTION_CHUNK_BYTES,
    SelfAttention,
    attention_chunk_rows,
    default_chunk_bytes,
    multi_head_attention,
)


def _qkv(batch, length, heads, head_dim, seed=0, dtype=jnp.float32, scale=1.0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return tuple((scale * jax.random.normal(k, (batch, length, heads, head_dim))).astype(dtype)
                 for k in keys)


# chunk_bytes: None = one chunk; 4 * L * L * 3 = at most three of the B * H = 20 (sequence,
# head) rows per chunk, i.e. 2 (the largest divisor of 20 up to 3); 1 = one row per chunk.
@pytest.mark.parametrize("chunk_bytes", [None, 4 * 17 * 17 * 3, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_equals_reference_attention_and_its_gradient(causal, chunk_bytes):
    q, k, v = _qkv(5, 17, 4, 8, scale=2.0)
    expected = jax.nn.dot_product_attention(q, k, v, is_causal=causal)
    got = multi_head_attention(q, k, v, causal=causal, chunk_bytes=chunk_bytes)
    assert got.shape == (5, 17, 4, 8) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)

    def loss(attend):
        return lambda q, k, v: jnp.sum(jnp.sin(attend(q, k, v)))

    ours = jax.grad(loss(lambda q, k, v: multi_head_attention(
        q, k, v, causal=causal, chunk_bytes=chunk_bytes)), argnums=(0, 1, 2))(q, k, v)
    ref = jax.grad(loss(lambda q, k, v: jax.nn.dot_product_attention(
        q, k, v, is_causal=causal)), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(ours, ref, strict=True):  # gradients reach ~10: relative 1e-5 as well
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_unet_shapes_and_large_logits():
    # the benchmark UNet's 16x16 attention (16 heads of 8 channels), one sequence per chunk,
    # with logits up to ~60 (q and k scaled by 4: the exact-maximum fallback of the
    # softmax shift) and ~3 (unscaled: the Cauchy-Schwarz shift)
    for scale in (4.0, 1.0):
        q, k, v = _qkv(2, 256, 16, 8, seed=1)
        q, k = scale * q, scale * k
        expected = jax.nn.dot_product_attention(q, k, v)
        got = multi_head_attention(q, k, v)
        assert bool(jnp.isfinite(got).all())
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_keys_longer_than_queries_and_bfloat16():
    q, _, _ = _qkv(3, 5, 2, 8, seed=2)
    _, k, v = _qkv(3, 9, 2, 8, seed=3)
    np.testing.assert_allclose(multi_head_attention(q, k, v, chunk_bytes=1),
                               jax.nn.dot_product_attention(q, k, v), atol=1e-5, rtol=0)
    qb, kb, vb = (a.astype(jnp.bfloat16) for a in (q, k, v))
    got = multi_head_attention(qb, kb, vb)
    assert got.dtype == jnp.bfloat16
    expected = jax.nn.dot_product_attention(qb, kb, vb).astype(jnp.float32)
    np.testing.assert_allclose(got.astype(jnp.float32), expected, atol=2e-2, rtol=0)
    with pytest.raises(ValueError, match="causal attention needs as many keys"):
        multi_head_attention(q, k, v, causal=True)


def test_chunk_rows():
    # float32 logits of one (sequence, head) row: 4 bytes * L * S; the rows per chunk divide
    # the rows and fit chunk_bytes
    assert attention_chunk_rows(256, 256, 256) == 16                 # 256 KiB per row, 4 MiB
    assert attention_chunk_rows(20, 17, 17, chunk_bytes=4 * 17 * 17 * 3) == 2
    assert attention_chunk_rows(13, 17, 17, chunk_bytes=4 * 17 * 17 * 5) == 1   # 13 is prime
    assert attention_chunk_rows(16, 8, 8) == 16                      # capped at the rows
    assert attention_chunk_rows(64, 4096, 4096) == 1                 # never below one row
    assert attention_chunk_rows(48, 256, 256, chunk_bytes=None) == 48


def test_auto_chunks_on_cpu_only():
    assert default_chunk_bytes("cpu") == ATTENTION_CHUNK_BYTES
    assert default_chunk_bytes("gpu") is None and default_chunk_bytes("tpu") is None
    assert jax.default_backend() == "cpu"  # the test suite runs on CPU
    # 4 x 16 (sequence, head) rows of 256 x 256 float32 logits = 4 chunks of 4 MiB: "auto"
    # traces to the same program as the explicit chunk size, not the one-chunk one
    q, k, v = _qkv(4, 256, 16, 8)

    def program(chunk_bytes):
        return str(jax.make_jaxpr(functools.partial(multi_head_attention,
                                                    chunk_bytes=chunk_bytes))(q, k, v))

    assert program("auto") == program(ATTENTION_CHUNK_BYTES) != program(None)
    with pytest.raises(ValueError, match="chunk_bytes must be an int, None or 'auto'"):
        multi_head_attention(q, k, v, chunk_bytes="big")


def test_reverse_mode_under_vmap_and_remat_and_no_forward_mode():
    q, k, v = _qkv(3, 9, 2, 8, seed=5)

    def loss(attend):
        return lambda q, k, v: jnp.sum(jnp.cos(attend(q, k, v)))

    expected = jax.grad(loss(jax.nn.dot_product_attention), argnums=(0, 1, 2))(q, k, v)
    def vmapped(attend):  # over the batch, each example a batch of one
        return lambda *qkv: jax.vmap(attend)(*(a[:, None] for a in qkv))[:, 0]

    for wrap in (jax.checkpoint, vmapped):
        got = jax.grad(loss(wrap(lambda q, k, v: multi_head_attention(q, k, v, chunk_bytes=1))),
                       argnums=(0, 1, 2))(q, k, v)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="jvp"):
        jax.jvp(multi_head_attention, (q, k, v), (q, k, v))


def test_self_attention_matches_reference_module_math():
    module = SelfAttention(32, num_heads=4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(4), (3, 10, 32))
    qkv = module.qkv(x).reshape(3, 10, 3, 4, 8)
    for causal in (False, True):
        ref = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2],
                                           is_causal=causal)
        expected = module.output(ref.reshape(3, 10, 32))
        np.testing.assert_allclose(module(x, causal=causal), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm", [10.0, 13.0, 15.0])
def test_gradients_stay_finite_when_the_logits_sit_far_below_the_shift(norm):
    """Anti-aligned queries and keys: the causal first row's only logit is -|q||k|/sqrt(K),
    far below the Cauchy-Schwarz shift +|q||k|/sqrt(K); the gradients must still equal the
    reference's (a shift of up to 40 once underflowed the backward pass to NaN)."""
    k = jax.random.normal(jax.random.key(0), (1, 8, 1, 32))
    k = norm * k / jnp.linalg.norm(k, axis=-1, keepdims=True)
    v = jax.random.normal(jax.random.key(1), (1, 8, 1, 32))

    def loss(fn, q, k, v):
        return jnp.sum(fn(q, k, v) * v)

    ours = jax.grad(lambda *a: loss(functools.partial(multi_head_attention, causal=True),
                                    *a), argnums=(0, 1, 2))(-k, k, v)
    ref = jax.grad(lambda *a: loss(functools.partial(jax.nn.dot_product_attention,
                                                     is_causal=True), *a),
                   argnums=(0, 1, 2))(-k, k, v)
    for a, b in zip(ours, ref, strict=True):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
