"""Post-hoc EMA of a run: the parameters of any EMA length reconstructed from its
power-function EMA snapshots (EDM2; the math is :mod:`jaxdiff.train.phema`, the files
:mod:`jaxdiff.train.snapshots`).

A run with ``optim.phema_stds`` writes a snapshot every ``train.phema_every`` steps and at its
last step. :func:`posthoc_params` solves the snapshot weights of a target length and combines
them; :func:`write_posthoc_workdir` (``experiments/posthoc_ema.py``) stores the result as a
workdir that sampling and evaluation read like any other.
"""

import json
import os
import pathlib

import jax
import numpy as np

from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.loop import restore_workdir
from jaxdiff.train.phema import combine, posthoc_weights
from jaxdiff.train.snapshots import SNAPSHOT_DIR, load_snapshot, snapshot_steps
from jaxdiff.typing import PyTree


def posthoc_params(workdir: str | os.PathLike, std: float, *, step: int | None = None):
    """``(params, info)``: the EMA of relative std ``std`` at ``step`` (default: the last
    snapshot's) reconstructed from the run's snapshots up to ``step``; ``info`` holds the
    snapshots' steps, stds and weights.

    Raises:
      FileNotFoundError: when the run has no snapshot (it trained without post-hoc EMA).
    """
    steps = snapshot_steps(workdir)
    if not steps:
        raise FileNotFoundError(f"{str(workdir)!r} has no post-hoc EMA snapshots in "
                                f"{SNAPSHOT_DIR}/ (train with optim.phema_stds and "
                                f"train.phema_every)")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise ValueError(f"step must be one of the run's snapshot steps "
                         f"({steps[0]}, ..., {steps[-1]}; {len(steps)} in all), got {step}")
    used = [s for s in steps if s <= step]
    _, state = restore_workdir(workdir)
    like = state.phema
    trees, snapshot_stds, snapshot_at = [], [], []
    for s in used:
        stds, profiles = load_snapshot(workdir, s, like)
        trees += list(profiles)
        snapshot_stds += list(stds)
        snapshot_at += [s] * len(stds)
    weights = posthoc_weights(snapshot_at, snapshot_stds, step, std)
    info = {"std": float(std), "step": step, "snapshot_steps": snapshot_at,
            "snapshot_stds": [float(s) for s in snapshot_stds],
            "weights": [float(w) for w in weights]}
    return combine(trees, weights), info


def write_posthoc_workdir(workdir: str | os.PathLike, out: str | os.PathLike, std: float, *,
                          step: int | None = None) -> pathlib.Path:
    """A workdir at ``out`` with ``workdir``'s config and its newest state, the EMA
    parameters replaced by the reconstruction of :func:`posthoc_params` and the step set to
    the one the EMA stands for (``posthoc.json`` records how); sampling and evaluation read
    it as any run. It is not for further training (its optimizer state is the newest)."""
    params, info = posthoc_params(workdir, std, step=step)
    _, state = restore_workdir(workdir)
    out = pathlib.Path(out)
    if (out / "checkpoints").exists():
        raise FileExistsError(f"{str(out)!r} already holds checkpoints; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text((pathlib.Path(workdir) / "config.json").read_text())
    like: PyTree = state.ema_params
    state = state._replace(step=np.asarray(info["step"], np.asarray(state.step).dtype),
                           ema_params=jax.tree.map(
                               lambda p, q: np.asarray(p, np.asarray(q).dtype), params, like))
    checkpointer = Checkpointer(out / "checkpoints", async_save=False)
    try:
        checkpointer.save(state, {"data_step": info["step"], "posthoc_ema": info})
    finally:
        checkpointer.close()
    (out / "posthoc.json").write_text(json.dumps({"source": str(workdir), **info}, indent=1))
    return out
