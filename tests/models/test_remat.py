"""Rematerialisation (``remat=True``) of every network's blocks: the same parameters, outputs
and gradients (dropout included), one checkpoint per block, and far fewer saved residuals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.ad_checkpoint import saved_residuals

import jaxdiff.models as jm
from tests.models.util import random_params

TEXT_DIM = 8


def _caption(batch: int) -> jm.TextCondition:
    rng = np.random.default_rng(1)
    return jm.TextCondition(tokens=jnp.asarray(rng.normal(size=(batch, 5, TEXT_DIM)), jnp.float32),
                         mask=jnp.asarray([[True] * 5, [True, True, True, False, False]]),
                         pooled=jnp.asarray(rng.normal(size=(batch, TEXT_DIM)), jnp.float32))


def _images(config):
    x = jax.random.normal(jax.random.key(3), (2, config.image_size, config.image_size,
                                              config.in_channels))
    return x, jnp.array([3, 70]), _caption(2)


def _tokens(config):
    x = jax.random.randint(jax.random.key(3), (2, 12), 0, config.vocab_size)
    return x, jnp.array([0.2, 0.7]), None


def _two_stream(config):
    x, t, _ = _tokens(config)
    return jm.TwoStream(noisy=x, clean=x[:, ::-1]), t, None


# (network config with dropout on, its inputs, the blocks it checkpoints)
CASES = {
    # resblock_updown: the up/downsampling residual blocks are checkpointed too; text_dim:
    # cross-attention reads the caption through the checkpoint
    "unet": (jm.UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2),
                           num_res_blocks=1, attention_levels=(1,), num_groups=4, dropout=0.2,
                           resblock_updown=True, text_dim=TEXT_DIM), _images, 2 + 2 + 4 + 2),
    "dit_cross_attention": (jm.DiTConfig(image_size=8, in_channels=3, hidden_size=16, depth=3,
                                         num_heads=2, num_classes=None, frequency_dim=16,
                                         dropout=0.2, text_dim=TEXT_DIM), _images, 3),
    "mmdit": (jm.DiTConfig(image_size=8, in_channels=3, hidden_size=16, depth=2, num_heads=2,
                           num_classes=None, frequency_dim=16, dropout=0.2, text_dim=TEXT_DIM,
                           joint_attention=True), _images, 2),
    "text_causal": (jm.TextTransformerConfig(vocab_size=11, max_length=12, hidden_size=16,
                                             depth=2, num_heads=2, cond_dim=16,
                                             frequency_dim=16, dropout=0.2, causal=True,
                                             time_conditioning=False), _tokens, 2),
    # BD3-LM's two-stream input: a static block-causal mask beside the traced arrays
    "text_block": (jm.TextTransformerConfig(vocab_size=11, max_length=24, hidden_size=16,
                                            depth=2, num_heads=2, cond_dim=16,
                                            frequency_dim=16, dropout=0.2, block_size=3),
                   _two_stream, 2),
}


def _loss_and_grads(config, inputs, remat: bool):
    config = dataclasses.replace(config, remat=remat)
    graphdef, abstract, rest = jm.abstract_init(config)
    params = random_params(abstract)
    apply = jm.make_apply_fn(graphdef, rest, train=True)
    x, t, cond = inputs(config)
    if isinstance(config, jm.TextTransformerConfig) and config.causal:
        t = None

    def loss(p):
        return jnp.mean(apply(p, x, t, cond, jax.random.key(4)) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    return params, value, grads, jax.make_jaxpr(jax.grad(loss))(params), saved_residuals(
        loss, params)


def _checkpoints(jaxpr) -> int:
    """The ``remat`` (``jax.checkpoint``) equations of ``jaxpr``, nested ones included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "remat2"
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    count += _checkpoints(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    count += _checkpoints(sub)
    return count


def _residual_bytes(residuals) -> int:
    return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a, why in residuals
               if not why.startswith("from the argument"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_remat_keeps_the_function_and_checkpoints_each_block(name):
    config, inputs, blocks = CASES[name]
    params, value, grads, jaxpr, residuals = _loss_and_grads(config, inputs, remat=False)
    params_r, value_r, grads_r, jaxpr_r, residuals_r = _loss_and_grads(config, inputs, remat=True)
    assert jax.tree.structure(params_r) == jax.tree.structure(params)
    assert value > 0
    # the recomputed forward pass is the same computation: equal up to reassociation
    np.testing.assert_allclose(value_r, value, rtol=1e-6)
    # (atol: gradients that vanish analytically, e.g. a bias before a norm, are rounding)
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    for g_r, g in zip(jax.tree.leaves(grads_r), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=1e-6 * scale)
    assert _checkpoints(jaxpr.jaxpr) == 0
    assert _checkpoints(jaxpr_r.jaxpr) == blocks
    # only the blocks' inputs (and what lies outside the blocks) are kept for the backward pass
    assert _residual_bytes(residuals_r) < 0.5 * _residual_bytes(residuals)


@pytest.mark.parametrize("config", [jm.UNetConfig, jm.DiTConfig])
def test_remat_must_be_a_bool(config):
    with pytest.raises(ValueError, match="remat must be a bool, got 1"):
        config(remat=1)
    with pytest.raises(ValueError, match="remat must be a bool"):
        jm.TextTransformerConfig(vocab_size=11, max_length=8, remat="yes")
