"""Text-conditioned UNet and DiT: cross-attention reads the caption's real tokens only, the
pooled embedding enters the time embedding, and a wrong condition is named."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import models as jm
from jaxdiff.models import TextCondition, UNetConfig
from tests.models.util import random_params

TEXT_DIM = 12
UNET = UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2),
                  num_res_blocks=1, attention_levels=(1,), num_heads=2, num_groups=4,
                  dropout=0.0, text_dim=TEXT_DIM)
DIT = jm.DiTConfig(image_size=8, in_channels=1, patch_size=2, hidden_size=16, depth=2,
                   num_heads=2, num_classes=None, learned_variance=False, frequency_dim=16,
                   text_dim=TEXT_DIM)


def _captions(batch=2, length=5, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((batch, length), bool)
    mask[0, :2] = True
    mask[1, :4] = True
    return TextCondition(tokens=jnp.asarray(rng.normal(size=(batch, length, TEXT_DIM)),
                                            jnp.float32),
                         mask=jnp.asarray(mask),
                         pooled=jnp.asarray(rng.normal(size=(batch, TEXT_DIM)), jnp.float32))


def _network(config):
    graphdef, params, rest = jm.abstract_init(config)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    params = random_params(params, seed=1)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    t = jnp.array([3.0, 40.0])
    return lambda cond: apply_fn(params, x, t, cond)


@pytest.mark.parametrize("config", [UNET, DIT], ids=["unet", "dit"])
def test_padding_is_invisible_and_the_caption_is_read(config):
    net = _network(config)
    cond = _captions()
    out = net(cond)
    padded = cond._replace(tokens=cond.tokens.at[0, 2:].set(50.0).at[1, 4:].set(-9.0))
    np.testing.assert_array_equal(net(padded), out)
    token_changed = cond._replace(tokens=cond.tokens.at[0, 1].add(1.0))
    changed = net(token_changed)
    assert np.max(np.abs(changed[0] - out[0])) > 1e-4
    np.testing.assert_array_equal(changed[1], out[1])    # captions are per example
    pooled_changed = net(cond._replace(pooled=cond.pooled.at[1].add(1.0)))
    assert np.max(np.abs(pooled_changed[1] - out[1])) > 1e-4


@pytest.mark.parametrize("config", [UNET, DIT], ids=["unet", "dit"])
def test_a_wrong_condition_is_named(config):
    net = _network(config)
    with pytest.raises(ValueError, match="cond must be a TextCondition"):
        net(None)
    with pytest.raises(ValueError, match="cond must be a TextCondition"):
        net(jnp.zeros((2,), jnp.int32))
    cond = _captions()
    with pytest.raises(ValueError, match=r"cond.tokens"):
        net(cond._replace(tokens=cond.tokens[..., :5]))
    with pytest.raises(ValueError, match=r"cond.mask must be bool"):
        net(cond._replace(mask=cond.mask.astype(jnp.int32)))
    with pytest.raises(ValueError, match=r"cond.pooled"):
        net(cond._replace(pooled=cond.pooled[:1]))


def test_captions_and_classes_are_exclusive():
    with pytest.raises(ValueError, match="captions or on class labels, not both"):
        dataclasses.replace(UNET, num_classes=10)
    with pytest.raises(ValueError, match="text_dim must be None or an int"):
        dataclasses.replace(DIT, text_dim=0)


def test_text_conditioning_adds_only_its_own_parameters():
    plain = jm.count_params(jm.abstract_init(dataclasses.replace(UNET, text_dim=None))[1])
    text = jm.count_params(jm.abstract_init(UNET)[1])
    # per attended block (level 1: 1 block down, 2 up; the middle's first): GroupNorm + q, k,
    # v, out; and the pooled embedding's projection
    c, e = 16, UNET.embed_dim
    cross = 2 * c + (c * c + c) + 2 * (TEXT_DIM * c + c) + (c * c + c)
    assert text - plain == 4 * cross + (TEXT_DIM * e + e)


OWN_ENCODER = {"caption_vocab_size": 20, "caption_length": 6, "caption_depth": 1,
               "caption_heads": 2}


def _tokens(batch=2, length=6):
    ids = np.array([[2, 7, 9, 3, 0, 0], [2, 5, 6, 8, 11, 3]], np.int32)[:batch, :length]
    return jm.CaptionTokens(ids=jnp.asarray(ids), mask=jnp.asarray(ids > 0))


@pytest.mark.parametrize("config", [UNET, DIT], ids=["unet", "dit"])
def test_a_network_with_its_own_text_encoder_reads_token_ids(config):
    net = _network(dataclasses.replace(config, **OWN_ENCODER))
    cond = _tokens()
    out = net(cond)
    np.testing.assert_array_equal(net(cond._replace(ids=cond.ids.at[0, 4:].set(17))), out)
    changed = net(cond._replace(ids=cond.ids.at[0, 1].set(8)))
    assert np.max(np.abs(changed[0] - out[0])) > 1e-4
    np.testing.assert_array_equal(changed[1], out[1])
    with pytest.raises(ValueError, match=r"cond must be CaptionTokens"):
        net(_captions())
    with pytest.raises(ValueError, match=r"7 tokens, more than the network's caption_length=6"):
        net(jm.CaptionTokens(ids=jnp.zeros((2, 7), jnp.int32), mask=jnp.ones((2, 7), bool)))
    with pytest.raises(ValueError, match=r"cond.mask must be bool"):
        net(cond._replace(mask=cond.mask[:, :3]))
    with pytest.raises(ValueError, match=r"cond.ids must lie in \[0, caption_vocab_size=20\)"):
        net(cond._replace(ids=cond.ids.at[1, 2].set(20)))


def test_the_own_text_encoder_is_a_small_bert_and_is_checked():
    plain = jm.count_params(jm.abstract_init(UNET)[1])
    own = jm.count_params(jm.abstract_init(dataclasses.replace(UNET, **OWN_ENCODER))[1])
    d, v, s = TEXT_DIM, 20, 6
    layer = 4 * (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * d
    assert own - plain == (v + s + 2) * d + 2 * d + layer     # embeddings, LayerNorm, 1 layer
    with pytest.raises(ValueError, match="needs text_dim"):
        dataclasses.replace(DIT, text_dim=None, num_classes=None, **OWN_ENCODER)
    with pytest.raises(ValueError, match="text_dim=12 must be divisible by caption_heads=5"):
        dataclasses.replace(UNET, **{**OWN_ENCODER, "caption_heads": 5})
    with pytest.raises(ValueError, match="caption_depth"):
        dataclasses.replace(UNET, **{**OWN_ENCODER, "caption_depth": 0})
