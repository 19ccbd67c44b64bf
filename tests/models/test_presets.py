"""Named presets: one line gives a paper's network."""

import jax
import pytest
from flax import nnx

import jaxdiff.models as jm


@pytest.mark.parametrize("name, model_class", [
    ("unet_tiny", jm.UNet), ("dit_tiny", jm.DiT), ("text_tiny", jm.TextTransformer),
    ("text_causal_tiny", jm.TextTransformer)])
def test_create_returns_the_preset_network(name, model_class):
    model = nnx.eval_shape(lambda: jm.create(name, key=jax.random.key(0)))
    assert isinstance(model, model_class)
    assert model.config == jm.PRESETS[name]
    _, params, _ = nnx.split(model, nnx.Param, ...)
    _, expected, _ = jm.abstract_init(jm.PRESETS[name])
    assert jm.count_params(params) == jm.count_params(expected)


def test_overrides_replace_config_fields():
    model = nnx.eval_shape(lambda: jm.create("dit_tiny", key=jax.random.key(0), num_classes=10,
                                             learned_variance=True))
    assert model.class_embed.embedding.shape == (11, 64)
    assert model.final_projection.kernel.shape == (64, 2 * 2 * 6)
    with pytest.raises(TypeError, match="unexpected keyword argument 'channels'"):
        jm.preset_config("dit_s2", channels=3)


def test_paper_presets_are_the_papers_configurations():
    # Ho et al. 2020 App. B and their code's padding and time features; Peebles & Xie 2023
    # Table 1 (counts: test_unet / test_dit; the checkpoint: tests/pretrained).
    assert jm.PRESETS["ddpm_cifar10"] == jm.UNetConfig(
        image_size=32, in_channels=3, base_channels=128, channel_mults=(1, 2, 2, 2),
        num_res_blocks=2, attention_levels=(1,), num_heads=1, dropout=0.1,
        num_groups=32, num_classes=None, learned_variance=False, norm_eps=1e-6,
        downsample_padding=0, timestep_cos_first=False, timestep_freq_shift=1.0)
    for name, width, heads in (("dit_s2", 384, 6), ("dit_b2", 768, 12), ("dit_xl2", 1152, 16)):
        config = jm.PRESETS[name]
        assert (config.hidden_size, config.num_heads, config.patch_size) == (width, heads, 2)
        assert config.depth == (28 if name == "dit_xl2" else 12)


def test_unknown_name_lists_the_presets():
    with pytest.raises(ValueError, match="name must be one of .*'ddpm_cifar10'"):
        jm.create("ddpm_imagenet", key=jax.random.key(0))

