r"""``autoencoder``: the KL autoencoder of latent diffusion, trained through the same loop.

Objective per image (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models", App. G; their ``LPIPSWithDiscriminator`` without the perceptual and the
adversarial term), divided by the image's ``H W C`` values so that it is O(1):

.. math::
    L(x) = \frac{1}{HWC}\Big[\sum_i \rho\big(x_i - D(z)_i\big)
           + \beta\,\mathrm{KL}\big(q(z \mid x) \,\|\, \mathcal N(0, I)\big)\Big],
    \qquad z \sim q(z \mid x),

with :math:`\rho` the absolute (``diffusion.reconstruction_loss = "l1"``, LDM's) or squared
error and :math:`\beta` = ``diffusion.kl_weight`` (LDM's 1e-6: a "KL-reg" autoencoder whose
latent stays close to the image, not a generative VAE). The held-out number is the same
loss. The sampler ``reconstruct`` decodes the posterior mean of the first held-out images.
:func:`latent_scale` is LDM's scaling factor, 1 / std of the latents of training images,
what a latent diffusion model multiplies them by.

Not built: LDM's patch discriminator and its adversarial term (the run state trains one
network with one objective); the model is an ``AutoencoderKL`` preset (``vae_tiny``,
``sd_vae``, or ``diffusers:DIR`` to fine-tune one).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import config_error
from jaxdiff.models.autoencoder import AutoencoderKLConfig, posterior_kl, posterior_sample
from jaxdiff.models.functional import make_autoencoder_fns
from jaxdiff.models.presets import preset_config
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.images import IMAGES

KL_WEIGHT = 1e-6
"""The default ``diffusion.kl_weight``: LDM's ``kl_weight`` of its KL-f8 / f4 autoencoders."""
RECONSTRUCTION_LOSSES = {"l1": jnp.abs, "l2": jnp.square}
SCALE_EXAMPLES = 2048
"""Training images :func:`latent_scale` measures by default."""


def _check_config(config) -> None:
    d, t = config.data, config.train
    if d.conditional:
        raise config_error("data.conditional", "an autoencoder is unconditional")
    if d.autoencoder is not None:
        raise config_error("data.autoencoder", "an autoencoder trains on the pixels")
    loss = AUTOENCODER.setting(config, "reconstruction_loss")
    if loss not in RECONSTRUCTION_LOSSES:
        raise config_error("diffusion.reconstruction_loss", f"must be one of "
                                                            f"{list(RECONSTRUCTION_LOSSES)}, "
                                                            f"got {loss!r}")
    if not AUTOENCODER.setting(config, "kl_weight") >= 0:
        raise config_error("diffusion.kl_weight", f"must be >= 0, got "
                                                  f"{config.diffusion.kl_weight}")
    if t.sample_steps is not None:
        raise config_error("train.sample_steps", f"an autoencoder reconstructs in one pass; "
                                                 f"set it to None, got {t.sample_steps}")
    mults = config.model.overrides.get("channel_mults",
                                       preset_config(config.model.preset).channel_mults)
    factor = 2 ** (len(mults) - 1)
    if d.image_size is not None and d.image_size % factor:
        raise config_error("data.image_size", f"must be divisible by the autoencoder's "
                                              f"downsampling {factor}, got {d.image_size}")


def autoencoder_objective(encode, decode, *, kl_weight: float, reconstruction_loss: str):
    """``loss_fn(params, key, batch) -> [B]``: the module docstring's :math:`L(x)` of
    ``batch["image"]`` for ``encode(params, x) -> (mean, log_variance)`` and
    ``decode(params, z) -> x``."""
    rho = RECONSTRUCTION_LOSSES[reconstruction_loss]

    def loss_fn(params, key, batch):
        x = batch["image"]
        mean, log_variance = encode(params, x)
        x_hat = decode(params, posterior_sample(key, mean, log_variance))
        values = x[0].size
        error = jnp.sum(rho(x - x_hat), axis=tuple(range(1, x.ndim)))
        return (error + kl_weight * posterior_kl(mean, log_variance)) / values

    return loss_fn


def _loss_fn(run):
    encode, decode = make_autoencoder_fns(run.graphdef, run.rest)
    return autoencoder_objective(
        encode, decode, kl_weight=AUTOENCODER.setting(run.config, "kl_weight"),
        reconstruction_loss=AUTOENCODER.setting(run.config, "reconstruction_loss"))


def reconstruct_fn(run):
    """Jitted ``reconstruct(params, x) -> decode(mean of q(z | x))``."""
    encode, decode = make_autoencoder_fns(run.graphdef, run.rest)
    return jax.jit(lambda params, x: decode(params, encode(params, x)[0]))


def _make_sampler(run, *, count: int, sampler: str):
    images = run.eval_dataset.images
    rows = jnp.asarray(images[np.arange(count) % len(images)])
    reconstruct = reconstruct_fn(run)
    return lambda key, params: reconstruct(params, rows)


def posterior_draws(encode, images, *, key, batch_size: int = 256) -> np.ndarray:
    """``float32`` draws ``z ~ q(z | x)`` for ``images`` under ``encode(x) -> (mean,
    log_variance)``, in batches of ``batch_size``, batch ``i`` with ``fold_in(key, i)``."""
    draw = jax.jit(lambda k, x: posterior_sample(k, *encode(x)))
    return np.concatenate([np.asarray(draw(jax.random.fold_in(key, i),
                                           jnp.asarray(images[start:start + batch_size])))
                           for i, start in enumerate(range(0, len(images), batch_size))]
                          ).astype(np.float32)


def latent_scale(encode, images, *, key, batch_size: int = 256) -> tuple[float, float]:
    """``(scale, std)``: LDM's scaling factor ``1 / std`` of the latents
    :func:`posterior_draws` gives for ``images`` (every value of every latent pooled), and
    that std."""
    std = float(posterior_draws(encode, images, key=key, batch_size=batch_size)
                .astype(np.float64).std())
    return 1.0 / std, std


_MODALITY = dataclasses.replace(
    IMAGES, name="autoencoder", networks=(AutoencoderKLConfig,),
    model_fields=lambda config, dataset: {"in_channels": dataset.images.shape[-1]})

AUTOENCODER = Task(
    name="autoencoder", modality=_MODALITY, schedules=(), samplers=("reconstruct",),
    sampler_options=(), check_config=_check_config,
    build_process=lambda config, schedule: None, model_fields=lambda config: {},
    objective=_loss_fn, held_out=_loss_fn, make_sampler=_make_sampler, evaluation=None,
    settings={"kl_weight": KL_WEIGHT, "reconstruction_loss": "l1"})
