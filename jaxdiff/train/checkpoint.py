"""Checkpoints with orbax's ``CheckpointManager``: atomic, asynchronous, the last N kept,
and a restore that falls back to an older step when the newest one cannot be read."""

import logging
import pathlib
import warnings

import jax
import orbax.checkpoint as ocp

from jaxdiff.train.state import TrainState


class Checkpointer:
    """Saves ``TrainState`` plus a JSON of metadata under ``directory/<step>/``.

    orbax writes each step to a temporary directory and renames it when complete, so a run
    killed mid-save leaves the previous checkpoints intact and no half-written step visible.
    """

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int = 3,
                 async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=async_save))

    def save(self, state: TrainState, metadata: dict) -> None:
        """Starts saving ``state`` at its step (asynchronously); ``metadata`` is JSON."""
        step = int(state.step)
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(metadata)))

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, abstract_state: TrainState) -> tuple[TrainState, dict] | None:
        """The newest readable checkpoint as ``(state, metadata)``, or None if there is none.

        A checkpoint that fails to restore is skipped with a warning that names its step, and
        the next older one is tried; if every one fails the last error is raised (never a
        silent fresh start over a workdir that has checkpoints).
        """
        error = None
        for step in reversed(self.steps()):
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    metadata=ocp.args.JsonRestore()))
            except Exception as err:  # noqa: BLE001 -- any unreadable checkpoint
                warnings.warn(f"checkpoint at step {step} in {self.directory} could not be "
                              f"restored ({type(err).__name__}: {err}); trying an older one",
                              stacklevel=2)
                logging.warning("checkpoint at step %d unreadable: %s", step, err)
                error = err
                continue
            return TrainState(*restored.state), dict(restored.metadata)
        if error is not None:
            raise RuntimeError(f"no checkpoint in {self.directory} could be restored") from error
        return None

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(state: TrainState) -> TrainState:
    """Shape/dtype/sharding placeholders of ``state``, the restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
