"""Diffusers-format model folders on disk: ``config.json`` and ``*.safetensors``.

A model folder (what ``ModelMixin.save_pretrained`` writes) holds ``config.json`` (the
constructor arguments, with ``_class_name``) and ``diffusion_pytorch_model.safetensors``, or
the shards of ``diffusion_pytorch_model.safetensors.index.json``. A pipeline folder (what
``DiffusionPipeline.save_pretrained`` and the Hub repositories hold) has ``model_index.json``
and one model folder per component (``unet/``, ``transformer/``, ``vae/``, ``scheduler/``);
older repositories such as ``google/ddpm-cifar10-32`` keep the model files at the top with a
``scheduler_config.json`` beside them. Tensors are read with the ``safetensors`` NumPy API:
no torch at run time. PyTorch pickles (``*.bin``) are not read (unpickling runs code, and
needs torch): convert them to safetensors first.
"""

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = WEIGHTS_NAME + ".index.json"
PIPELINE_INDEX = "model_index.json"


def model_folder(path: str | os.PathLike, components: tuple[str, ...]) -> pathlib.Path:
    """The model folder in ``path``: ``path`` itself when it has a ``config.json``, else the
    first ``path/<component>`` of a pipeline folder that has one (``"unet"``,
    ``"transformer"``, ``"vae"``). A ``FileNotFoundError`` names what is missing."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"pretrained folder {str(path)!r} does not exist (a folder "
                                f"saved by diffusers' save_pretrained or downloaded with "
                                f"huggingface_hub.snapshot_download)")
    for candidate in (path, *(path / c for c in components)):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"{str(path)!r} has no {CONFIG_NAME}, and no model folder "
                            f"{list(components)} of a pipeline with one")


def read_config(folder: pathlib.Path, name: str = CONFIG_NAME) -> dict:
    """The JSON object ``folder/name``."""
    file = pathlib.Path(folder) / name
    if not file.is_file():
        raise FileNotFoundError(f"{str(file)!r} does not exist")
    values = json.loads(file.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"{str(file)!r} must hold a JSON object, got {type(values).__name__}")
    return values


def read_tensors(folder: pathlib.Path) -> dict[str, np.ndarray]:
    """Every tensor of the model folder's safetensors file(s), by name (bfloat16 ones as
    ``ml_dtypes.bfloat16``, which JAX registers with NumPy)."""
    from safetensors.numpy import load_file

    folder = pathlib.Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return load_file(folder / WEIGHTS_NAME)
    if (folder / INDEX_NAME).is_file():
        weight_map = read_config(folder, INDEX_NAME).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{str(folder / INDEX_NAME)!r} has no weight_map object")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(load_file(folder / shard))
        return tensors
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    hint = (f"; it has {pickles}: PyTorch pickles are not read (no torch at run time), "
            f"convert them with safetensors.torch.save_file first" if pickles else "")
    raise FileNotFoundError(f"{str(folder)!r} has no {WEIGHTS_NAME} or {INDEX_NAME}{hint}")


def write_model_folder(folder: str | os.PathLike, config: dict,
                       tensors: dict[str, np.ndarray]) -> pathlib.Path:
    """Writes ``config.json`` and ``diffusion_pytorch_model.safetensors`` into ``folder``
    (created). Both are written in full beside the folder's files first, then each replaces
    its namesake atomically, the config last; an earlier model's other weight files there
    (shards and their index, PyTorch pickles), which diffusers would read first, are
    removed before."""
    from safetensors.numpy import save_file

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    try:
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                  staging / WEIGHTS_NAME, metadata={"format": "pt"})
        stale = [folder / INDEX_NAME] if (folder / INDEX_NAME).is_file() else []
        if stale:
            stale += [folder / shard for shard in
                      set(read_config(folder, INDEX_NAME).get("weight_map", {}).values())]
        for path in stale + sorted(folder.glob("*.bin")):
            path.unlink(missing_ok=True)
        for name in (WEIGHTS_NAME, CONFIG_NAME):   # the config last: it marks a model
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
