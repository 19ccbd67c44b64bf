"""Run outputs: metrics as JSON lines (optionally TensorBoard) and PNG image grids."""

import json
import math
import pathlib

import numpy as np


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl``; with
    ``tensorboard=True`` also writes event files (needs ``tensorboardX``)."""

    def __init__(self, workdir: str | pathlib.Path, *, tensorboard: bool = False):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError("train.tensorboard=True needs tensorboardX: "
                                  "pip install tensorboardX") from err
            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def write(self, step: int, metrics: dict) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **values}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, int(step))
            self._tb.flush()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """The JSON lines of ``workdir/metrics.jsonl``."""
    with open(pathlib.Path(workdir) / "metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def image_grid(images: np.ndarray, *, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """``[N, H, W, C]`` images in [-1, 1] -> one ``uint8 [rows*(H+pad)+pad, ..., C]`` grid."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pixels = np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + col * (w + pad):pad + col * (w + pad) + w] = pixels[i]
    return grid


def save_image_grid(path: str | pathlib.Path, images: np.ndarray, *, scale: int = 1,
                    columns: int | None = None) -> pathlib.Path:
    """Writes ``image_grid(images)`` as a PNG, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    grid = image_grid(images, columns=columns)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    mode = "L" if grid.shape[-1] == 1 else "RGB"
    Image.fromarray(grid[..., 0] if mode == "L" else grid, mode=mode).save(path)
    return pathlib.Path(path)
