"""Checkpoints with orbax's ``CheckpointManager``: atomic, asynchronous, the last N kept,
and a restore that falls back to an older step when the newest one cannot be read."""

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
            state=ocp.args.StandardSave(_item(state)), metadata=ocp.args.JsonSave(metadata)))

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, abstract_state: TrainState) -> tuple[TrainState, dict] | None:
        """The newest readable checkpoint as ``(state, metadata)``, or None if there is none.

        A checkpoint that fails to restore is skipped with a one-line warning (its step, its
        path and the first line of the cause) and the next older one is tried. Once one is
        read, the unreadable newer ones are moved aside to ``<directory>.unreadable/<step>``
        (kept, never deleted; single-process runs only), so that training writes those steps
        again when it passes them. If every one fails the last error is raised and nothing
        is moved (never a silent fresh start over a workdir that has checkpoints).
        """
        error, unreadable = None, []
        for step in reversed(self.steps()):
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_item(abstract_state)),
                    metadata=ocp.args.JsonRestore()))
            except Exception as err:  # noqa: BLE001 -- any unreadable checkpoint
                cause = (str(err).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"checkpoint step {step} at {self.directory / str(step)} is "
                              f"unreadable ({type(err).__name__}: {cause}); trying an older "
                              "one", stacklevel=2)
                error = err
                unreadable.append(step)
                continue
            for bad in unreadable:
                self._move_aside(bad)
            fields = dict(restored.state)
            fields["phema"] = tuple(fields.get("phema", ()))
            return TrainState(**fields), dict(restored.metadata)
        if error is not None:
            raise RuntimeError(f"no checkpoint in {self.directory} could be restored") from error
        return None

    def _move_aside(self, step: int) -> None:
        """Moves an unreadable step out of the manager's directory (single process only:
        with several, another process may still be reading it)."""
        if jax.process_count() != 1:
            return
        aside = self.directory.with_name(self.directory.name + ".unreadable") / str(step)
        if aside.exists():
            aside = aside.with_name(f"{step}.{len(list(aside.parent.iterdir()))}")
        aside.parent.mkdir(parents=True, exist_ok=True)
        (self.directory / str(step)).rename(aside)
        self._manager.reload()
        warnings.warn(f"moved the unreadable checkpoint step {step} to {aside}; training "
                      "writes that step again", stacklevel=3)

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _item(state: TrainState) -> dict:
    """What is stored: the state's fields as a dict, without ``phema`` when it is empty, so
    that runs without post-hoc EMA store (and read) exactly the five fields of checkpoints
    written before it existed."""
    fields = state._asdict()
    if not fields["phema"]:
        del fields["phema"]
    return fields


def abstract_like(state: TrainState) -> TrainState:
    """Shape/dtype/sharding placeholders of ``state``, the restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
