"""Stopping a run cleanly on SIGTERM / SIGINT (a preempted TPU / GPU job, ``timeout``,
Ctrl-C): the loop finishes its current step, saves a checkpoint and returns, instead of
losing every step since the last checkpoint."""

import signal
import threading

import jax
import numpy as np
from jax.experimental.multihost_utils import process_allgather

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignals:
    """A context manager that turns SIGTERM / SIGINT into a request to stop.

    Inside it the signals set a flag instead of ending the process (outside the main thread,
    where Python cannot install handlers, it does nothing); :meth:`requested` reads the flag.
    In a multi-host run the processes agree on it (any process's signal stops all of them at
    the same step) every ``sync_every`` steps only, since agreeing is a collective: a host
    sync that a single process never pays. The previous handlers come back on exit.
    """

    def __init__(self, *, sync_every: int = 1):
        self.signal_name: str | None = None
        self.sync_every = sync_every
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def requested(self, step: int) -> bool:
        """Whether a stop signal arrived (in any process of the run) by ``step``."""
        local = self.signal_name is not None
        if jax.process_count() == 1:
            return local
        if step % self.sync_every:
            return False
        return bool(np.any(process_allgather(np.asarray(local))))
