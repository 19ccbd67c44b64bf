"""Post-hoc EMA snapshots on disk: ``<workdir>/phema/<step>.npz`` with the step, the
profiles' relative stds and every leaf of their parameter trees, written to a temporary file
and renamed (a killed run never leaves half a snapshot). Read by
:mod:`jaxdiff.train.posthoc`."""

import os
import pathlib

import jax
import numpy as np

SNAPSHOT_DIR = "phema"


def save_snapshot(workdir: str | os.PathLike, step: int, stds, profiles: tuple) -> pathlib.Path:
    """Writes the profiles at ``step`` atomically; returns the file."""
    directory = pathlib.Path(workdir) / SNAPSHOT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree.leaves(profiles)
    path = directory / f"{int(step):09d}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, step=np.int64(step), stds=np.asarray(stds, np.float64),
             **{f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    os.replace(tmp, path)
    return path


def snapshot_steps(workdir: str | os.PathLike) -> list[int]:
    """The steps of the run's snapshots, increasing."""
    directory = pathlib.Path(workdir) / SNAPSHOT_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.stem) for p in directory.glob("*.npz") if p.stem.isdigit())


def load_snapshot(workdir: str | os.PathLike, step: int, like: tuple) -> tuple[np.ndarray,
                                                                                tuple]:
    """``(stds, profiles)`` of the snapshot at ``step``, the profiles shaped as ``like``."""
    path = pathlib.Path(workdir) / SNAPSHOT_DIR / f"{int(step):09d}.npz"
    with np.load(path) as f:
        stds = np.asarray(f["stds"], np.float64)
        leaves = [f[f"leaf_{i}"] for i in range(len(jax.tree.leaves(like)))]
    return stds, jax.tree.unflatten(jax.tree.structure(like), leaves)
