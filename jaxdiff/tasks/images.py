"""The image modality: labelled image datasets, shuffled batches, PNG sample grids.

Shared by every image process (``gaussian``, ``flow``, ``edm``): what the data fixes in the model
(image size, channels, classes), the batches ``{"image", "label"}``, and the grid the loop
writes. :class:`ImageEvaluation` is what the image report asks of an image process.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxdiff import data, gaussian
from jaxdiff._validation import config_error
from jaxdiff.data.files import is_array_file, is_image_folder
from jaxdiff.data.grid import save_image_grid
from jaxdiff.data.load import TFDS_PREFIX
from jaxdiff.models.dit import DiTConfig
from jaxdiff.models.unet import UNetConfig
from jaxdiff.tasks import conditions, latent
from jaxdiff.tasks.base import Modality


@dataclasses.dataclass(frozen=True)
class ImageEvaluation:
    """The process-specific parts of the image report (:mod:`jaxdiff.evaluation.images`).

    Attributes:
      bits_per_dim: ``(run, *, num_bins, nll_steps) -> bpd(key, params, x0, cond) -> [B]``
        (jitted; ``cond`` the network's condition of the images, None for an unconditional
        run: :meth:`~jaxdiff.tasks.conditions.ImageConditions.rows`): the process's
        likelihood bound in bits per dimension on a
        ``num_bins``-level grid; ``nll_steps`` coarsens its discretisation (None: the
        process's own).
      bits_per_dim_protocol: ``(run, *, num_bins, nll_steps) -> dict``: how that number was
        computed: ``method``, ``label`` (the report's row name), ``description`` (its
        protocol cell), ``chain_steps``, ``note``, and what else the process records.
      diagnostics: ``(run, params, key, x0, cond) -> (results, protocol)``: reconstruction
        error (``t``, one-step and chain MSE / PSNR) and loss per timestep as JSON-ready
        dicts; the protocol names ``chain_steps``, ``chain_sampler`` and ``loss``.
      continuous_bound: ``(run, *, num_bins) -> (bpd, protocol)``: a second number beside
        :attr:`bits_per_dim`, VDM's continuous-time bound (:func:`vdm_bound`), or a
        ``ValueError`` saying why the run's process has none; None: the process has none.
      clip_x0: ``(run) -> bool``: whether the run's samplers clip x0 by default (what the
        report's samples were drawn with).
    """

    bits_per_dim: Callable
    bits_per_dim_protocol: Callable
    diagnostics: Callable
    continuous_bound: Callable | None = None
    clip_x0: Callable = lambda run: True


LABEL_DROPOUT = 0.1
"""The default ``diffusion.label_dropout`` of a class-conditional image run: the rate at which
training replaces a label by the null class (classifier-free guidance, Ho & Salimans 2022)."""

VDM_DRAWS = 16
"""Draws of ``(t, eps)`` per image in :func:`vdm_bound` (averaged)."""


def vdm_bound(path, denoiser, *, prediction: str, num_bins: int):
    r"""``(bpd, protocol)``: jitted ``bpd(key, params, x0, cond) -> [B]``, VDM's continuous-time
    bound (:func:`jaxdiff.gaussian.vdm_bits_per_dim`) of ``denoiser(params) -> denoise_fn``
    on ``path``, each image's the mean of :data:`VDM_DRAWS` draws (antithetic times across
    the batch), and its report protocol; a ``ValueError`` where the path's clean end has
    :math:`\sigma = 0` (VDM's decoder needs :math:`\sigma_0 > 0`)."""
    if path.alpha_sigma_value(path.t_min)[1] == 0.0:
        raise ValueError(f"the {path.name!r} path ends in the data itself (sigma = 0 at its "
                         f"clean end): VDM's decoder has no scale there")

    @jax.jit
    def bpd(key, params, x0, cond):
        fn = denoiser(params)

        def draw(i):   # one network in the compiled program, not VDM_DRAWS copies
            return gaussian.vdm_bits_per_dim(jax.random.fold_in(key, i), fn, path, x0,
                                             prediction=prediction, num_bins=num_bins,
                                             cond=cond)

        return jnp.mean(jax.lax.map(draw, jnp.arange(VDM_DRAWS)), axis=0)

    protocol = {"method": "VDM continuous-time bound (an upper bound)",
                "label": "bits/dim (VDM bound)",
                "description": f"{VDM_DRAWS} draws of (t, eps) per image, antithetic times, "
                               f"VDM's discretized decoder at the path's clean end",
                "note": f"diffusion term over t in [{path.t_min:.3g}, {path.t_max:.3g}] on the "
                        f"{path.name} path, plus reconstruction and prior terms"}
    return bpd, protocol


def _check_config(config) -> None:
    d = config.data
    if not (d.name in data.EMBEDDED_NAMES or d.name.startswith(TFDS_PREFIX)
            or is_image_folder(d.name) or is_array_file(d.name)):
        raise config_error("data.name", f"must be one of {sorted(data.EMBEDDED_NAMES)}, "
                                        f"'tfds:<name>', an existing folder of images or an "
                                        f".npz / .npy file, got {d.name!r}")
    if d.path is not None:
        raise config_error("data.path", f"is for the 'text8' corpus only; got "
                                        f"path={d.path!r} with name={d.name!r}")
    conditions.check_label_dropout(config)
    if d.text_encoder is not None and d.text_encoder not in conditions.TEXT_ENCODERS:
        raise config_error("data.text_encoder", f"must be None or one of "
                                                f"{list(conditions.TEXT_ENCODERS)}, got "
                                                f"{d.text_encoder!r}")
    if d.latents not in latent.LATENT_MODES:
        raise config_error("data.latents", f"must be one of {list(latent.LATENT_MODES)}, got "
                                           f"{d.latents!r}")
    if d.latents != latent.LATENT_MODES[0] and d.autoencoder is None:
        raise config_error("data.latents", f"={d.latents!r} is for latent runs "
                                           f"(data.autoencoder); this run is on the pixels")
    if d.caption_length < 2:
        raise config_error("data.caption_length", f"must be >= 2 ([CLS] and [SEP]), got "
                                                  f"{d.caption_length}")


def _load(config):
    d = config.data
    splits = [data.load(d.name, split, image_size=d.image_size, download=d.download)
              for split in ("train", "test")]
    captioned = splits[0].captions is not None
    if d.text_encoder is not None and not (d.conditional and captioned):
        raise config_error("data.text_encoder", f"encodes the captions of a captioned "
                                                f"dataset for a conditional run; {d.name!r} "
                                                f"has {'captions' if captioned else 'none'} "
                                                f"and data.conditional={d.conditional}")
    if d.autoencoder is None:
        return tuple(splits)
    codec = latent.load_codec(d.autoencoder)
    key = jax.random.key(config.train.seed)
    return tuple(latent.encode_dataset(codec, split, key=jax.random.fold_in(key, i))
                 for i, split in enumerate(splits))


def _model_fields(config, dataset) -> dict:
    _, height, _, channels = dataset.images.shape
    captioned = config.data.conditional and dataset.captions is not None
    labelled = config.data.conditional and dataset.captions is None
    fields = {"image_size": height, "in_channels": channels,
              "num_classes": dataset.num_classes if labelled else None}
    if captioned:   # only a network that reads captions has the fields
        fields.update(conditions.encoder_fields(config.data.text_encoder or conditions.MINILM,
                                                dataset.captions, config.data.caption_length))
    return fields


def _with_conditions(run, batches):
    """``batches`` with what the run's condition adds (captions' encodings)."""
    fields = conditions.run_conditions(run).batch_fields
    for batch in batches:
        yield {**batch, **fields(batch["label"])}


def _train_batches(run, start_step: int):
    return _with_conditions(run, latent.train_batches(run, start_step=start_step))


def _eval_batches(run) -> list:
    """``train.eval_batches`` shuffled test batches (seed 0)."""
    t = run.config.train
    batches = _with_conditions(run, data.batches(run.eval_dataset, batch_size=t.batch_size,
                                                 seed=0))
    return [next(batches) for _ in range(t.eval_batches)]


def _sample_shape(run, count: int) -> tuple[int, ...]:
    return (count,) + run.dataset.images.shape[1:]


def _save_samples(run, path_stem, samples):
    path = path_stem.with_suffix(".png")
    images = latent.to_pixels(run, samples)
    save_image_grid(path, images, scale=max(1, 128 // images.shape[1]))
    return path


IMAGES = Modality(name="images", networks=(UNetConfig, DiTConfig), check_config=_check_config,
                  load=_load, model_fields=_model_fields, train_batches=_train_batches,
                  eval_batches=_eval_batches, held_out_metrics=lambda run, loss: {},
                  sample_shape=_sample_shape, save_samples=_save_samples,
                  to_pixels=latent.to_pixels)
