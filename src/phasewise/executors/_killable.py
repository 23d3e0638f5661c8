"""What the process and subprocess executors share: a killable future, and the small
system calls around a worker process."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["KillableFuture", "signal_group", "write_all"]


class KillableFuture(Future):  # type: ignore[type-arg]
    """A Future whose ``cancel()`` also stops a running task: it calls ``kill(self)``.

    ``concurrent.futures.Future.cancel()`` refuses once a task runs; phasewise cancels
    running tasks on timeout, ``fail_fast`` and Ctrl-C, and a process can be killed.
    ``cancel()`` then returns True, and the future resolves with an error once the
    worker is gone.
    """

    def __init__(self, phase: str, kill: Callable[[KillableFuture], None]) -> None:
        super().__init__()
        self.phase = phase
        self._kill = kill

    def cancel(self) -> bool:
        if super().cancel():
            return True
        if self.done():
            return False
        self._kill(self)
        return True


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def signal_group(pid: int | None, sig: int) -> None:
    """Signal the process group led by ``pid`` (a worker and its children); the process
    alone if it leads no group yet; nothing if it is gone."""
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
