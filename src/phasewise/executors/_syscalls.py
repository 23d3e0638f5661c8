"""The small system calls around a worker process: writing a whole buffer to a pipe,
signalling a worker and the children it started."""

from __future__ import annotations

import os

__all__ = ["signal_group", "write_all"]


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd``, resuming after partial writes."""
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
