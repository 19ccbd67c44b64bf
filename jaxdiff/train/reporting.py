"""Run outputs: metrics as JSON lines (optionally TensorBoard)."""

import json
import os
import pathlib


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl``; with
    ``tensorboard=True`` also writes event files (needs ``tensorboardX``). With
    ``resume_step``, the rows of later steps (logged by a run that was lost before its next
    checkpoint) are dropped first, so each step is logged once however often a run is
    resumed."""

    def __init__(self, workdir: str | pathlib.Path, *, tensorboard: bool = False,
                 resume_step: int | None = None):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            self._drop_rows_after(resume_step)
        self._tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError("train.tensorboard=True needs tensorboardX: "
                                  "pip install tensorboardX") from err
            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def _drop_rows_after(self, step: int) -> None:
        """Rewrites the file (atomically) without the rows of steps after ``step``."""
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        partial = self.path.with_suffix(".jsonl.partial")
        partial.write_text("".join(line + "\n" for line in kept))
        os.replace(partial, self.path)

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
