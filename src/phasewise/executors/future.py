"""CancellableFuture: a future whose ``cancel()`` also stops a task that already runs.

``concurrent.futures.Future.cancel()`` refuses once a task runs. phasewise cancels
running tasks on timeout, ``fail_fast`` and Ctrl-C, and an executor that can stop one
(kill a worker process, cancel a remote job) gives its futures the means::

    future = CancellableFuture(kill=lambda f: worker_of[f].kill(), phase=task.phase)

    future.cancel()   # pending: cancelled as any Future is (kill is not called)
                      # running: kill(future) is called, once; cancel() returns True
                      # done: nothing happens; cancel() returns False

After a kill, the executor still resolves the future (with any exception: the run does
not use the outcome of a future it cancelled) once the task is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["CancellableFuture"]

_kill_lock = threading.Lock()


class CancellableFuture(Future[Any]):
    """A ``concurrent.futures.Future`` whose ``cancel()`` calls ``kill(self)`` when the
    task is already running.

    ``kill`` is called at most once, from the thread that cancels (the run's, or a timer
    thread): it should start stopping the task and return quickly, without waiting for it
    to be gone. ``phase`` names the task's phase, for error messages.
    """

    def __init__(self, kill: Callable[[CancellableFuture], Any], phase: str = "") -> None:
        super().__init__()
        self.phase = phase
        self.kill_requested = False
        """True once ``cancel()`` has asked ``kill`` to stop the running task."""
        self._kill = kill

    def cancel(self) -> bool:
        """Cancel a pending task as ``Future.cancel`` does, or stop a running one with
        ``kill``; False only if the future is already done."""
        if super().cancel():
            return True
        if self.done():
            return False
        with _kill_lock:
            first, self.kill_requested = not self.kill_requested, True
        if first:
            self._kill(self)
        return True
