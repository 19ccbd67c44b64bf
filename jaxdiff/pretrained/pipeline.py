"""A pretrained diffusers pixel-space pipeline (``DDPMPipeline``: a ``UNet2DModel`` and its
scheduler) sampled with jaxdiff's samplers.

``load_pipeline("ddpm-cifar10-32")`` reads the UNet (:func:`jaxdiff.pretrained.load_model`)
and the scheduler (:func:`jaxdiff.pretrained.scheduler.load_scheduler`); its
:meth:`PretrainedPipeline.sampler` is the sampler of a ``gaussian`` run
(:func:`jaxdiff.tasks.gaussian.image_sampler`) on the scheduler's betas, prediction type and
x0 clipping, and the scheduler's variance for the ancestral sampler (a learned-variance
model uses its learned one).
"""

import dataclasses
import os
import pathlib

import jax
from flax import nnx

from jaxdiff.models.functional import abstract_init, make_apply_fn
from jaxdiff.models.unet import UNetConfig
from jaxdiff.pretrained import folder
from jaxdiff.pretrained.scheduler import PretrainedScheduler, load_scheduler
from jaxdiff.tasks.conditions import class_conditions
from jaxdiff.tasks.gaussian import GAUSSIAN, image_sampler


@dataclasses.dataclass(frozen=True)
class PretrainedPipeline:
    """A pretrained UNet (``config``, ``params``) and the ``scheduler`` it was trained on."""

    folder: pathlib.Path
    config: UNetConfig
    params: nnx.State
    scheduler: PretrainedScheduler

    def sampler(self, *, count: int, sampler: str = GAUSSIAN.samplers[0], **options):
        """Jitted ``sample(key) -> float32 [count, H, W, C]`` in [-1, 1]: ``sampler`` (one of
        a ``gaussian`` run's: ``ddim``, ``ddpm``, ``dpm_solver++``, ``heun``, ``euler``,
        ``midpoint``) with ``options`` (``num_steps``, ``spacing``, ``eta``, ``classes``,
        ``guidance_scale``, ...; ``clip_x0`` and the ancestral ``ddpm``'s ``variance`` default
        to the scheduler's, a learned-variance model's to its own)."""
        graphdef, _, rest = abstract_init(self.config)
        if sampler == "ddpm" and not self.config.learned_variance:
            options.setdefault("variance", self.scheduler.variance)
        options.setdefault("clip_x0", self.scheduler.clip_x0)
        size, channels = self.config.image_size, self.config.in_channels
        sample = image_sampler(make_apply_fn(graphdef, rest), self.scheduler.schedule,
                               shape=(count, size, size, channels),
                               prediction=self.scheduler.prediction,
                               learned_variance=self.config.learned_variance,
                               conditions=class_conditions(self.config.num_classes),
                               sampler=sampler, **options)
        params = self.params
        return lambda key: sample(key, params)


def load_pipeline(path: str | os.PathLike) -> PretrainedPipeline:
    """The UNet and scheduler of the diffusers pipeline folder ``path``."""
    from jaxdiff.pretrained import load_model

    path = pathlib.Path(path)
    check_pixel_pipeline(path)
    config, params = load_model(path)
    scheduler = load_scheduler(path)
    if (scheduler.variance == "learned") != config.learned_variance:
        raise ValueError(f"{str(path)!r}: the scheduler's variance is {scheduler.variance!r} "
                         f"but the UNet's learned_variance is {config.learned_variance} (a "
                         f"learned variance goes with variance_type 'learned_range')")
    return PretrainedPipeline(folder=path, config=config, params=jax.device_put(params),
                              scheduler=scheduler)


PIXEL_PIPELINES = ("DDPMPipeline", "DDIMPipeline")


def check_pixel_pipeline(path: str | os.PathLike) -> None:
    """``path`` holds a pixel-space UNet pipeline: its ``model_index.json`` (if it has one;
    the older layout keeps the model files and ``scheduler_config.json`` at the top) names
    one of :data:`PIXEL_PIPELINES` -- a latent one (``LDMPipeline``, with a ``vae`` /
    ``vqvae``) samples latents, not images -- and its model is a ``UNet2DModel``."""
    path = pathlib.Path(path)
    index = path / folder.PIPELINE_INDEX
    if index.is_file():
        name = folder.read_config(path, folder.PIPELINE_INDEX).get("_class_name")
        if name not in PIXEL_PIPELINES:
            raise ValueError(f"{str(index)!r}: _class_name must be one of "
                             f"{list(PIXEL_PIPELINES)} (a UNet sampling pixels), got {name!r}")
    from jaxdiff.pretrained import load_config

    network = load_config(path)
    if not isinstance(network, UNetConfig):
        raise ValueError(f"{str(path)!r} holds a {type(network).__name__} model; a pretrained "
                         f"pipeline here needs a pixel-space UNet2DModel")
