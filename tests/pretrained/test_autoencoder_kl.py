"""jaxdiff's AutoencoderKL against diffusers': the same encoder posterior (mean, log-variance),
decoder and KL on the same weights; the SD VAE's published config is jaxdiff's ``sd_vae``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import models as jm
from jaxdiff import pretrained
from tests.pretrained.reference import assert_round_trip, relative_error, saved_model

# stabilityai/sd-vae-ft-ema's config.json (written by diffusers 0.4.2)
SD_VAE = {"_class_name": "AutoencoderKL", "act_fn": "silu",
          "block_out_channels": [128, 256, 512, 512],
          "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3,
          "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
          "out_channels": 3, "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4}
SMALL = dict(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
             norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
             up_block_types=("UpDecoderBlock2D",) * 2)
SMALL_PLAIN = dict(in_channels=1, out_channels=1, block_out_channels=(16, 16, 32),
                   layers_per_block=2, latent_channels=3, norm_num_groups=4,
                   down_block_types=("DownEncoderBlock2D",) * 3,
                   up_block_types=("UpDecoderBlock2D",) * 3, mid_block_add_attention=False,
                   use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.5)
CONFIGS = {"small": (SMALL, 16), "small_plain": (SMALL_PLAIN, 12),
           "sd_vae": ({k: v for k, v in SD_VAE.items() if k != "_class_name"}, 32)}


def _outputs(model, config, params, size: int):
    """``(jaxdiff, diffusers)`` pairs of the posterior mean, log-variance and the decoding."""
    import torch

    graphdef, _, rest = jm.abstract_init(config)
    encode, decode = (jax.jit(f) for f in jm.make_autoencoder_fns(graphdef, rest))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, size, size, config.in_channels)).astype(np.float32)
    z = rng.standard_normal((2, size // config.downsampling, size // config.downsampling,
                             config.latent_channels)).astype(np.float32)
    with torch.no_grad():
        posterior = model.encode(torch.from_numpy(x.transpose(0, 3, 1, 2))).latent_dist
        decoded = model.decode(torch.from_numpy(z.transpose(0, 3, 1, 2))).sample
    mean, log_variance = encode(params, jnp.asarray(x))
    nhwc = lambda t: t.numpy().transpose(0, 2, 3, 1)   # noqa: E731
    return ((np.asarray(mean), nhwc(posterior.mean)),
            (np.asarray(log_variance), nhwc(posterior.logvar)),
            (np.asarray(decode(params, jnp.asarray(z))), nhwc(decoded)),
            (np.asarray(jm.posterior_kl(mean, log_variance)), posterior.kl().numpy()))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_loaded_autoencoder_encodes_and_decodes_as_diffusers(name, tmp_path):
    values, size = CONFIGS[name]
    model = saved_model("AutoencoderKL", tmp_path, **values)
    config, params = pretrained.load_model(tmp_path)
    for got, want in _outputs(model, config, params, size):
        assert relative_error(got, want) <= 1e-5


def test_the_sd_vae_preset_is_stabilityai_sd_vae_ft_ema():
    config = pretrained.autoencoder_kl.jaxdiff_config(SD_VAE)
    assert config == jm.preset_config("sd_vae")
    assert jm.count_params(jm.abstract_init(config)[1]) == 83_653_863
    assert config.downsampling == 8 and config.scaling_factor == 0.18215


def test_export_then_import_is_bit_exact_and_diffusers_reads_it(tmp_path):
    import diffusers

    saved_model("AutoencoderKL", tmp_path / "a", **SMALL)
    config, params = assert_round_trip(tmp_path / "a", tmp_path / "b")
    reread = diffusers.AutoencoderKL.from_pretrained(tmp_path / "b").eval()
    for got, want in _outputs(reread, config, params, 16):
        assert relative_error(got, want) <= 1e-5


def test_the_posterior_draw_is_mean_plus_std_times_noise():
    key = jax.random.key(3)
    mean, log_variance = jnp.full((2, 3, 3, 4), 0.5), jnp.full((2, 3, 3, 4), np.log(0.25))
    noise = jax.random.normal(key, mean.shape)
    np.testing.assert_allclose(jm.posterior_sample(key, mean, log_variance),
                               0.5 + 0.5 * noise, rtol=1e-6)
    np.testing.assert_allclose(jm.posterior_kl(mean, log_variance),   # closed form per value
                               36 * 0.5 * (0.25 + 0.25 - 1 - np.log(0.25)), rtol=1e-6)


@pytest.mark.parametrize("edit, match", [
    ({"shift_factor": 0.1}, r"field 'shift_factor': jaxdiff's AutoencoderKL supports only None"),
    ({"use_post_quant_conv": False}, r"field 'use_post_quant_conv': jaxdiff has both"),
    ({"down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"]},
     r"field 'down_block_types': must be 2 x 'DownEncoderBlock2D'"),
    ({"latent_magnitude": 3}, r"field 'latent_magnitude': is not supported"),
])
def test_a_config_jaxdiff_cannot_honour_is_named(edit, match):
    with pytest.raises(ValueError, match=match):
        pretrained.autoencoder_kl.jaxdiff_config({"_class_name": "AutoencoderKL", **SMALL,
                                                  **edit})


def test_the_autoencoder_checks_its_inputs():
    model = jm.create("vae_tiny", key=jax.random.key(0))
    with pytest.raises(ValueError, match="x's height"):
        model.encode(jnp.zeros((1, 6, 8, 3)))
    with pytest.raises(ValueError, match=r"z must have shape \[\?, \?, \?, 4\]"):
        model.decode(jnp.zeros((1, 2, 2, 3)))
    x = jnp.zeros((2, 8, 8, 3))
    assert model(x).shape == x.shape and model.encode(x)[0].shape == (2, 2, 2, 4)
