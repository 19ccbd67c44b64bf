"""Run outputs: metrics lines, TensorBoard events, image grids."""

import numpy as np
import pytest

from jaxdiff import train
from jaxdiff.data.grid import image_grid


def test_metrics_lines_and_tensorboard_events(tmp_path):
    writer = train.MetricsWriter(tmp_path, tensorboard=True)
    writer.write(10, {"loss": np.float32(0.5)})
    writer.write(20, {"loss": 0.25, "eval_loss": 0.3})
    assert train.read_metrics(tmp_path) == [{"step": 10, "loss": 0.5},
                                            {"step": 20, "loss": 0.25, "eval_loss": 0.3}]
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_image_grid_places_and_scales_every_image():
    images = np.stack([np.full((2, 3, 1), v) for v in (-1.0, 0.0, 1.0)])
    grid = image_grid(images, columns=2, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[1, 5, 0] == 128 and grid[4, 1, 0] == 255
    assert grid[0, 0, 0] == 255          # padding is white
    with pytest.raises(ValueError, match="images"):
        image_grid(images[0])
