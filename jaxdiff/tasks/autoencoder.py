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

**Adversarial patch loss** (``diffusion.adversarial_weight`` :math:`w > 0`; off by default):
LDM's hinge GAN term with its patch discriminator
(:class:`~jaxdiff.models.discriminator.PatchDiscriminator`, held by the autoencoder with
``discriminator_layers``, 3 unless ``model.overrides`` says otherwise). The two players share
the run's one state and one optimizer; each player's gradient is isolated by stop-gradients,
not a gradient-reversal layer (the hinge losses of the two players are not each other's
negatives, so reversing one gradient would not give the other):

.. math::
    L = L(x) + \lambda\,\big[-\bar D_{\mathrm{sg}\,\phi}(\hat x)\big]
      + \tfrac12\big[\overline{\mathrm{relu}(1 - D_\phi(x))}
      + \overline{\mathrm{relu}(1 + D_\phi(\mathrm{sg}\,\hat x))}\big],

bars the means over patches, so the autoencoder's gradient is that of its reconstruction and
generator terms and the discriminator's that of its hinge loss. :math:`\lambda` is LDM's
adaptive weight, :math:`w\,\|\nabla_\ell L_{\mathrm{rec}}\| / (\|\nabla_\ell
L_G\| + 10^{-4})` (clipped to :math:`[0, 10^4]`, no gradient) with :math:`\ell` the
decoder's last convolution kernel and both gradients of the batch means. Differences from LDM:
no LPIPS term (no perceptual network ships offline), the term is on from the first step (the
loss has no step counter, so LDM's late ``disc_start`` is not built), GroupNorm in the
discriminator, and one global-norm gradient clip over both players. The held-out loss stays
:math:`L(x)`, comparable between runs. The model is an ``AutoencoderKL`` preset
(``vae_tiny``, ``sd_vae``, or ``diffusers:DIR`` to fine-tune one -- without the adversarial
term: a pretrained folder holds no discriminator, and such a run is a named config error).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff._validation import config_error
from jaxdiff.models.autoencoder import AutoencoderKLConfig, posterior_kl, posterior_sample
from jaxdiff.models.functional import make_autoencoder_fns, make_discriminator_fn
from jaxdiff.models.presets import preset_config
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.images import IMAGES

DISCRIMINATOR_LAYERS = 3
"""The discriminator's stride-2 layers when the adversarial term is on (LDM's ``n_layers``)."""
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
    weight = AUTOENCODER.setting(config, "adversarial_weight")
    if not weight >= 0:
        raise config_error("diffusion.adversarial_weight", f"must be >= 0, got {weight}")
    layers = config.model.overrides.get("discriminator_layers")
    if layers is not None and bool(layers) != (weight > 0):
        raise config_error("model.overrides", f"discriminator_layers={layers} with "
                                              f"diffusion.adversarial_weight={weight}: the "
                                              f"discriminator exists exactly when the "
                                              f"adversarial term is on")
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


def adaptive_weight(reconstruction_grad, generator_grad, weight: float):
    r"""LDM's :math:`w\,\|g_{\mathrm{rec}}\| / (\|g_G\| + 10^{-4})`, clipped to
    :math:`[0, 10^4]`, without gradient."""
    ratio = jnp.linalg.norm(reconstruction_grad) / (jnp.linalg.norm(generator_grad) + 1e-4)
    return weight * jax.lax.stop_gradient(jnp.clip(ratio, 0.0, 1e4))


def _patch_mean(logits):
    return jnp.mean(logits, axis=tuple(range(1, logits.ndim)))


def generator_loss(logits_fake):
    r"""``[B]``: :math:`-\bar D(\hat x)`, the mean over each image's patches."""
    return -_patch_mean(logits_fake)


def discriminator_loss(logits_real, logits_fake):
    r"""``[B]``: the hinge loss :math:`\tfrac12[\overline{\mathrm{relu}(1 - D(x))} +
    \overline{\mathrm{relu}(1 + D(\hat x))}]`."""
    return 0.5 * (_patch_mean(jax.nn.relu(1.0 - logits_real))
                  + _patch_mean(jax.nn.relu(1.0 + logits_fake)))


def _last_kernel(tree):
    return tree["decoder"]["output_conv"]["kernel"][...]


def adversarial_objective(encode, decode, discriminate, *, kl_weight: float,
                          reconstruction_loss: str, adversarial_weight: float):
    """``loss_fn(params, key, batch) -> [B]``: the module docstring's :math:`L` for
    ``discriminate(params, x) -> logits`` besides ``encode`` and ``decode``."""
    rho = RECONSTRUCTION_LOSSES[reconstruction_loss]

    def loss_fn(params, key, batch):
        x = batch["image"]
        values = x[0].size
        reconstruction = lambda xh: jnp.sum(rho(x - xh), axis=tuple(range(1, x.ndim)))  # noqa: E731
        frozen = jax.lax.stop_gradient(params)          # the discriminator as the AE sees it
        generator = lambda xh: generator_loss(discriminate(frozen, xh))  # noqa: E731
        mean, log_variance = encode(params, x)
        z = posterior_sample(key, mean, log_variance)
        x_hat, pullback = jax.vjp(lambda p: decode(p, z), params)
        # the batch means' gradients at the decoder's last kernel (XLA keeps only the part
        # of each pullback that reaches it)
        at_last = lambda f: _last_kernel(pullback(jax.grad(  # noqa: E731
            lambda xh: jnp.mean(f(xh)))(x_hat))[0])
        lam = adaptive_weight(at_last(lambda xh: reconstruction(xh) / values),
                              at_last(generator), adversarial_weight)
        discriminator = discriminator_loss(discriminate(params, x),
                                           discriminate(params, jax.lax.stop_gradient(x_hat)))
        return ((reconstruction(x_hat) + kl_weight * posterior_kl(mean, log_variance)) / values
                + lam * generator(x_hat) + discriminator)

    return loss_fn


def _loss_fn(run, *, train: bool = False):
    encode, decode = make_autoencoder_fns(run.graphdef, run.rest)
    kl_weight = AUTOENCODER.setting(run.config, "kl_weight")
    loss = AUTOENCODER.setting(run.config, "reconstruction_loss")
    weight = AUTOENCODER.setting(run.config, "adversarial_weight")
    if train and weight > 0:
        return adversarial_objective(encode, decode,
                                     make_discriminator_fn(run.graphdef, run.rest),
                                     kl_weight=kl_weight, reconstruction_loss=loss,
                                     adversarial_weight=weight)
    return autoencoder_objective(encode, decode, kl_weight=kl_weight, reconstruction_loss=loss)


def reconstruct_fn(run):
    """Jitted ``reconstruct(params, x) -> decode(mean of q(z | x))``."""
    encode, decode = make_autoencoder_fns(run.graphdef, run.rest)
    return jax.jit(lambda params, x: decode(params, encode(params, x)[0]))


def _make_sampler(run, *, count: int, sampler: str):
    images = run.eval_dataset.images
    rows = jnp.asarray(images[np.arange(count) % len(images)])
    reconstruct = reconstruct_fn(run)
    return lambda key, params: reconstruct(params, rows)


@functools.lru_cache(maxsize=8)
def _draw_fn(encode):
    """``jit((key, x) -> z ~ q(z | x))`` of one encoder (compiled once per encoder)."""
    return jax.jit(lambda k, x: posterior_sample(k, *encode(x)))


def posterior_draws(encode, images, *, key, batch_size: int = 256) -> np.ndarray:
    """``float32`` draws ``z ~ q(z | x)`` for ``images`` under ``encode(x) -> (mean,
    log_variance)``, in batches of ``batch_size``, batch ``i`` with ``fold_in(key, i)``."""
    draw = _draw_fn(encode)
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


def _discriminator_fields(config) -> dict:
    on = AUTOENCODER.setting(config, "adversarial_weight") > 0
    return {"discriminator_layers": DISCRIMINATOR_LAYERS if on else 0}


_MODALITY = dataclasses.replace(
    IMAGES, name="autoencoder", networks=(AutoencoderKLConfig,),
    model_fields=lambda config, dataset: {"in_channels": dataset.images.shape[-1]})

AUTOENCODER = Task(
    name="autoencoder", modality=_MODALITY, schedules=(), samplers=("reconstruct",),
    sampler_options=(), check_config=_check_config,
    build_process=lambda config, schedule: None, model_fields=_discriminator_fields,
    objective=lambda run: _loss_fn(run, train=True), held_out=_loss_fn,
    make_sampler=_make_sampler, evaluation=None,
    settings={"kl_weight": KL_WEIGHT, "reconstruction_loss": "l1", "adversarial_weight": 0.0})
