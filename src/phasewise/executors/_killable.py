"""What the process and subprocess executors share: a killable future, the small system
calls around a worker process, and the words for how a worker failed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import Future

from phasewise.core import wire
from phasewise.core.errors import (
    BootstrapError,
    RemotePhaseError,
    SerializationError,
)

__all__ = [
    "KillableFuture",
    "describe_exit",
    "describe_unfinished",
    "error_from_reply",
    "signal_group",
    "write_all",
]


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


def describe_exit(phase: str, pid: int, exitcode: int | None) -> str:
    """Why a worker died, in words: the signal's name, or the exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -exitcode == 9 else ""
        return f"phase {phase!r}: its worker process {pid} was killed by {name}{hint}"
    return f"phase {phase!r}: its worker process {pid} exited with code {exitcode} before replying"


def describe_unfinished(reader: wire.MessageReader) -> str:
    """What a worker that has gone left half-sent, in words to append to ``describe_exit``
    ("" if nothing)."""
    if not reader.pending:
        return ""
    expected = reader.expected
    of = f"of the {expected} " if expected is not None else ""
    return f"; it had sent {reader.pending} {of}bytes of a message"


def error_from_reply(message: wire.Error, phase: str, executor: str) -> Exception:
    """The exception a worker's Error frame stands for (to raise, or set on a future)."""
    if message.type == "BootstrapError":  # not the phase's fault: the run stops
        return BootstrapError(executor, message.message)
    if message.type == "SerializationError":
        return SerializationError(message.message, phase)
    return RemotePhaseError(message.type, message.message, message.traceback, phase)
