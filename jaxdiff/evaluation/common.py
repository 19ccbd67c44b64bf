"""What every evaluation report shares: a restored run, number formatting, the files."""

import dataclasses
import json
import os
import pathlib

import numpy as np

from jaxdiff import train


@dataclasses.dataclass(frozen=True)
class RestoredRun:
    """A trained run: its parts (:func:`jaxdiff.train.build_run`), EMA parameters and step."""

    workdir: pathlib.Path
    run: object
    ema_params: object
    step: int


def restore_run(workdir: str | os.PathLike) -> RestoredRun:
    """Restores the newest checkpoint of a workdir of :func:`jaxdiff.train.train`.

    Raises:
      FileNotFoundError: naming ``workdir`` when it, its ``config.json`` or its checkpoints
        are missing.
    """
    run, state = train.restore_workdir(workdir)
    return RestoredRun(workdir=pathlib.Path(workdir), run=run, ema_params=state.ema_params,
                       step=int(state.step))


def pretrained_run(folder: str | os.PathLike, *, data_name: str) -> RestoredRun:
    """A pretrained diffusers pipeline (a ``UNet2DModel`` and its DDPM / DDIM scheduler in
    ``folder``) as a ``gaussian`` run on the image dataset ``data_name`` at the network's
    image size (class-conditional if the network is): ``model.preset = "diffusers:<folder>"``,
    ``diffusion.schedule = "diffusers"`` with the scheduler's T and prediction type."""
    from jaxdiff import pretrained

    pretrained.pipeline.check_pixel_pipeline(folder)
    network = pretrained.load_config(folder)
    scheduler = pretrained.load_scheduler(folder)
    config = train.from_dict({
        "data": {"name": data_name, "image_size": network.image_size,
                 "conditional": network.num_classes is not None},
        "model": {"preset": f"diffusers:{folder}"},
        "diffusion": {"process": "gaussian", "schedule": "diffusers",
                      "num_steps": scheduler.schedule.num_steps,
                      "prediction": scheduler.prediction,
                      "learned_variance": network.learned_variance}})
    run = train.build_run(config)
    return RestoredRun(workdir=pathlib.Path(folder), run=run,
                       ema_params=train.initial_state(run).ema_params, step=0)


def unavailable(err: BaseException) -> str:
    """A report field that could not be measured: ``"unavailable: <error type>: <why>"``."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"unavailable: {type(err).__name__}: {first}"


def format_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}"
    return f"{value:.4e}"


def wall_time_lines(report: dict) -> list[str]:
    """The Markdown closing lines: the report's wall time per part, in seconds."""
    return ["", "Wall time (s): " + ", ".join(f"{k} {v}" for k, v in
                                               report["wall_seconds"].items()), ""]


def write_files(report: dict, directory: str | os.PathLike, *,
                markdown) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes ``metrics.json`` and ``metrics.md`` (``markdown(report)``) into ``directory``
    (created)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "metrics.json", directory / "metrics.md"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
