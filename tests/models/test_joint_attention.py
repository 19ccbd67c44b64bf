"""MM-DiT's joint-attention block against a float64 NumPy reference, and the DiT built from
it: padded caption tokens are invisible, the caption is read, the last block's caption stream
is keys and values only."""

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff import models as jm
from jaxdiff.models.joint_block import JointTransformerBlock
from tests.models.test_text_conditioning import DIT, _captions, _network
from tests.models.util import random_params

DIM, HEADS, COND = 8, 2, 6


def _layer_norm(x):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-6)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _linear(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _reference(params, x, c, mask, cond, last):
    """One MM-DiT block (Esser et al. 2024, Fig. 2b) in float64 NumPy."""
    silu = cond / (1 + np.exp(-cond))
    streams = {"image": x, "caption": c}
    mods, qkv = {}, {}
    for name, h in streams.items():
        p = params[name]
        mods[name] = np.split(_linear(p["modulation"], silu), 2 if name == "caption" and last
                              else 6, axis=-1)
        shift, scale = mods[name][:2]
        normed = _layer_norm(h) * (1 + scale[:, None]) + shift[:, None]
        b, n, _ = h.shape
        qkv[name] = _linear(p["qkv"], normed).reshape(b, n, 3, HEADS, DIM // HEADS)
    q, k, v = (np.concatenate([qkv["image"][:, :, i], qkv["caption"][:, :, i]], 1)
               for i in range(3))
    keys = np.concatenate([np.ones(x.shape[:2], bool), mask], 1)
    logits = np.einsum("blhk,bshk->bhls", q, k) / np.sqrt(DIM // HEADS)
    logits = np.where(keys[:, None, None], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = np.einsum("bhls,bshk->blhk", weights, v).reshape(q.shape[:2] + (DIM,))
    n = x.shape[1]
    out = {}
    for name, h, part in (("image", x, attended[:, :n]), ("caption", c, attended[:, n:])):
        if name == "caption" and last:
            out[name] = None
            continue
        p = params[name]
        _, _, gate_a, shift_m, scale_m, gate_m = mods[name]
        h = h + gate_a[:, None] * _linear(p["output"], part)
        normed = _layer_norm(h) * (1 + scale_m[:, None]) + shift_m[:, None]
        out[name] = h + gate_m[:, None] * _linear(p["mlp_output"],
                                                  _gelu_tanh(_linear(p["mlp_hidden"], normed)))
    return out["image"], out["caption"]


def _block(last):
    block = JointTransformerBlock(DIM, num_heads=HEADS, cond_dim=COND, last=last,
                                  rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(block, nnx.Param)
    params = random_params(params, seed=3, scale=0.3)
    return nnx.merge(graphdef, params), nnx.to_pure_dict(params)


def _inputs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, DIM)).astype(np.float32)
    c = rng.normal(size=(2, 5, DIM)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    cond = rng.normal(size=(2, COND)).astype(np.float32)
    return x, c, mask, cond


def test_the_joint_block_matches_a_float64_reference():
    x, c, mask, cond = _inputs()
    for last in (False, True):
        block, params = _block(last)
        got_x, got_c = block(*map(jnp.asarray, (x, c, mask, cond)))
        want_x, want_c = _reference(params, *(a.astype(np.float64) if a.dtype != bool else a
                                              for a in (x, c, mask, cond)), last)
        np.testing.assert_allclose(got_x, want_x, atol=2e-5)
        if last:
            assert got_c is None and "output" not in params["caption"]
        else:
            np.testing.assert_allclose(got_c, want_c, atol=2e-5)


def test_padded_caption_tokens_never_reach_the_image():
    x, c, mask, cond = _inputs()
    block, _ = _block(False)
    out_x, out_c = block(*map(jnp.asarray, (x, c, mask, cond)))
    padded = c.copy()
    padded[0, 2:] = 30.0
    new_x, new_c = block(*map(jnp.asarray, (x, padded, mask, cond)))
    np.testing.assert_array_equal(new_x, out_x)
    np.testing.assert_array_equal(new_c[:, :2], out_c[:, :2])   # real caption tokens too


MMDIT = dataclasses.replace(DIT, joint_attention=True)


def test_an_mm_dit_reads_the_caption_and_ignores_its_padding():
    net = _network(MMDIT)
    cond = _captions()
    out = net(cond)
    padded = cond._replace(tokens=cond.tokens.at[0, 2:].set(50.0).at[1, 4:].set(-9.0))
    np.testing.assert_array_equal(net(padded), out)
    changed = net(cond._replace(tokens=cond.tokens.at[0, 1].add(1.0)))
    assert np.max(np.abs(changed[0] - out[0])) > 1e-4
    np.testing.assert_array_equal(changed[1], out[1])


def test_mm_dit_needs_captions():
    try:
        dataclasses.replace(MMDIT, text_dim=None, num_classes=3)
    except ValueError as err:
        assert "joint_attention=True (MM-DiT)" in str(err)
    else:
        raise AssertionError("joint_attention without text_dim was accepted")


def test_an_mm_dit_has_a_caption_stream_instead_of_cross_attention():
    cross_attention = jm.count_params(jm.abstract_init(DIT)[1])
    joint = jm.count_params(jm.abstract_init(MMDIT)[1])
    d, t, m = DIT.hidden_size, DIT.text_dim, int(DIT.hidden_size * DIT.mlp_ratio)
    linear = lambda i, o: i * o + o   # noqa: E731
    cross = 2 * d + linear(d, d) + 2 * linear(t, d) + linear(d, d)   # LayerNorm, q k v o
    stream = linear(d, 6 * d) + linear(d, 3 * d) + linear(d, d) + linear(d, m) + linear(m, d)
    pre_only = linear(d, 2 * d) + linear(d, 3 * d)
    depth = DIT.depth
    assert joint - cross_attention == (linear(t, d) + (depth - 1) * stream + pre_only
                                       - depth * cross)
