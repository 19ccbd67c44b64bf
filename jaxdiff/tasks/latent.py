r"""Latent images: an image run on the latents of a frozen autoencoder (latent diffusion).

Rombach et al. 2022: a diffusion model of :math:`s\,z` with :math:`z \sim q(z \mid x)` the
posterior of a frozen KL autoencoder and :math:`s` its latent scale, sampled in the latent
space and decoded, :math:`\hat x = D(\hat z / s)`. ``data.autoencoder`` names the autoencoder:

* the workdir of a finished ``autoencoder`` run (:mod:`jaxdiff.tasks.autoencoder`): its EMA
  parameters, and :math:`s` measured from the data as LDM does, 1 / std of latents of
  :data:`~jaxdiff.tasks.autoencoder.SCALE_EXAMPLES` training images
  (:func:`~jaxdiff.tasks.autoencoder.latent_scale`, key 0);
* ``"diffusers:DIR"``: a diffusers ``AutoencoderKL`` (a model folder, or a pipeline with a
  ``vae/``), with its config's ``scaling_factor`` (0.18215 for the SD VAE).

Each image is encoded once when the run is built, one posterior draw per image from the key
``fold_in(key(train.seed), split)`` (as fast-DiT caches them): the run's data is that
:class:`~jaxdiff.data.ArrayDataset` of latents, whose ``pixels`` are the images. With
``data.latents="cached"`` (the default) training batches are drawn from it; with
``"per_batch"`` each training batch's images are encoded when the batch is drawn, a fresh
posterior draw every time (LDM's own training, the objective's expectation over
:math:`q(z \mid x)`; :func:`train_batches`). Everything downstream -- objectives,
samplers -- is the image run's; what leaves the run as an image (sample grids, the
evaluation's FID) is decoded first (:func:`to_pixels`).
"""

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import data
from jaxdiff._validation import config_error
from jaxdiff.data.arrays import ArrayDataset
from jaxdiff.models.autoencoder import AutoencoderKLConfig
from jaxdiff.models.functional import make_autoencoder_fns
from jaxdiff.models.presets import DIFFUSERS_PREFIX

ENCODE_BATCH = 256
LATENT_MODES = ("cached", "per_batch")
"""The ``data.latents`` values, the default first."""


@dataclasses.dataclass(frozen=True)
class LatentCodec:
    """A frozen autoencoder and its latent scale.

    Attributes:
      source: the ``data.autoencoder`` it was loaded from.
      config: the autoencoder's config.
      scale: :math:`s`, what latents are multiplied by.
      encode: jitted ``(x) -> (mean, log_variance)``.
      decode: jitted ``(z) -> x``.
    """

    source: str
    config: AutoencoderKLConfig
    scale: float
    encode: Callable
    decode: Callable

    def latents(self, images: np.ndarray, *, key) -> np.ndarray:
        """``float32`` :math:`s\\,z`, one posterior draw per image
        (:func:`~jaxdiff.tasks.autoencoder.posterior_draws`)."""
        from jaxdiff.tasks.autoencoder import posterior_draws

        draws = posterior_draws(self.encode, images, key=key, batch_size=ENCODE_BATCH)
        return (np.float32(self.scale) * draws).astype(np.float32)

    def images(self, latents) -> np.ndarray:
        """:math:`D(\\hat z / s)` clipped to [-1, 1], ``float32`` NumPy."""
        latents = np.asarray(latents)
        return np.concatenate([
            np.clip(np.asarray(self.decode(jnp.asarray(latents[s:s + ENCODE_BATCH])
                                           / self.scale)), -1.0, 1.0)
            for s in range(0, len(latents), ENCODE_BATCH)]).astype(np.float32)


def _jitted(graphdef, rest, params):
    encode, decode = make_autoencoder_fns(graphdef, rest)
    return (jax.jit(lambda x: encode(params, x)), jax.jit(lambda z: decode(params, z)))


@functools.lru_cache(maxsize=2)
def load_codec(source: str) -> LatentCodec:
    """The :class:`LatentCodec` of ``data.autoencoder`` ``source`` (loaded once per
    process); a missing or wrong source is a ``ValueError`` naming ``data.autoencoder``."""
    from jaxdiff import models as jm

    if source.startswith(DIFFUSERS_PREFIX):
        from jaxdiff.pretrained import load_model

        try:
            config, params = load_model(source[len(DIFFUSERS_PREFIX):])
        except (OSError, ValueError) as err:
            raise config_error("data.autoencoder", str(err)) from None
        if not isinstance(config, AutoencoderKLConfig):
            raise config_error("data.autoencoder", f"{source!r} holds a "
                                                   f"{type(config).__name__}, not an "
                                                   f"AutoencoderKL")
        graphdef, _, rest = jm.abstract_init(config)
        encode, decode = _jitted(graphdef, rest, params)
        return LatentCodec(source, config, float(config.scaling_factor), encode, decode)
    from jaxdiff import train  # the loop builds on the tasks: imported when used
    from jaxdiff.tasks.autoencoder import AUTOENCODER, SCALE_EXAMPLES, latent_scale

    if not (pathlib.Path(source) / "config.json").is_file():
        raise config_error("data.autoencoder", f"{source!r} is neither a finished autoencoder "
                                               f"run's workdir (no config.json) nor "
                                               f"'diffusers:<folder>'")
    run, state = train.restore_workdir(source)
    if run.task is not AUTOENCODER:
        raise config_error("data.autoencoder", f"{source!r} holds a {run.task.name!r} run, "
                                               f"not an autoencoder")
    params = state.ema_params
    encode, decode = _jitted(run.graphdef, run.rest, params)
    rows = np.random.default_rng(0).permutation(len(run.dataset))[:SCALE_EXAMPLES]
    scale, _ = latent_scale(encode, run.dataset.images[rows], key=jax.random.key(0))
    return LatentCodec(source, run.model_config, scale, encode, decode)


def encode_dataset(codec: LatentCodec, dataset: ArrayDataset, *, key) -> ArrayDataset:
    """``dataset`` as its cached latents (:meth:`LatentCodec.latents`), keeping its labels
    and captions, with the images as ``pixels``."""
    factor = codec.config.downsampling
    height, width, channels = dataset.images.shape[1:]
    if height % factor or width % factor or channels != codec.config.in_channels:
        raise config_error("data.autoencoder", f"{codec.source!r} encodes "
                                               f"{codec.config.in_channels}-channel images "
                                               f"whose sides divide by {factor}; the data "
                                               f"has {dataset.images.shape[1:]}")
    if dataset.noise is not None:
        raise config_error("data.autoencoder", f"{dataset.name!r} couples each image with "
                                               f"pixel noise (reflow pairs); that coupling has "
                                               f"no meaning on latents")
    return ArrayDataset(images=codec.latents(dataset.images, key=key), labels=dataset.labels,
                        num_classes=dataset.num_classes, name=f"{dataset.name}:latent",
                        captions=dataset.captions, pixels=dataset)


def to_pixels(run, samples) -> np.ndarray:
    """A run's samples as images: decoded when the run is latent, else as they are."""
    source = run.config.data.autoencoder
    return np.asarray(samples) if source is None else load_codec(source).images(samples)


def train_batches(run, *, start_step: int):
    """The run's training batches from ``start_step`` (:func:`jaxdiff.data.batches` with
    ``train.batch_size`` and ``train.seed``): of its dataset, or for ``data.latents=
    "per_batch"`` the same rows of its images encoded now, batch ``step`` of process ``p``
    with the key ``fold_in(fold_in(fold_in(key(train.seed), 2), step), p)``."""
    t, d = run.config.train, run.config.data
    if d.autoencoder is None or d.latents == "cached":
        return data.batches(run.dataset, batch_size=t.batch_size, seed=t.seed,
                            start_step=start_step)
    return _encoded(load_codec(d.autoencoder), run.dataset.pixels, t, start_step)


def _encoded(codec: LatentCodec, images: ArrayDataset, t, start_step: int):
    key = jax.random.fold_in(jax.random.key(t.seed), 2)
    batches = data.batches(images, batch_size=t.batch_size, seed=t.seed,
                           start_step=start_step)
    for step, batch in enumerate(batches, start=start_step):
        draw_key = jax.random.fold_in(jax.random.fold_in(key, step), jax.process_index())
        yield {**batch, "image": codec.latents(batch["image"], key=draw_key)}
