"""Run outputs: metrics as JSON lines (optionally TensorBoard)."""

import json
import pathlib


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
