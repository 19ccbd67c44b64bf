"""Image grids: a batch of images in [-1, 1] as one ``uint8`` picture, and its PNG."""

import math
import pathlib

import numpy as np


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
