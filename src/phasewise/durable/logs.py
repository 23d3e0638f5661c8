"""The run's output, kept beside its journal: ``logs.jsonl`` in the work directory.

The journal holds transitions; what phases print goes here, one JSON object per
captured line, ``{"phase", "stream", "line", "time"}`` (``time``: seconds since the
epoch), each in one ``write`` to a file opened with ``O_APPEND`` as the line arrives —
so a viewer in another process (``phasewise watch``, ``phasewise mcp``, ``phasewise
report``) reads a run's output while it runs. A fresh run starts the file afresh; a
resumed run appends to it. A last line cut short is ignored when the file is read.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import msgspec

__all__ = ["LogFile", "LogLine", "read_logs", "tail_logs"]


class LogLine(msgspec.Struct, frozen=True):
    """One captured line of a phase, as kept in ``logs.jsonl``."""

    phase: str
    stream: str
    line: str
    time: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LogLine).decode


class LogFile:
    """Appends a run's captured lines to ``path`` (opened once, for the run)."""

    def __init__(self, path: Path, *, fresh: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self.path = path
        self._fd = os.open(path, flags, 0o600)

    def write(self, phase: str, stream: str, line: str, time: float) -> None:
        if self._fd >= 0:
            os.write(self._fd, _encode(LogLine(phase, stream, line, time)) + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_logs(path: Path, offset: int = 0) -> tuple[list[LogLine], int]:
    """The lines kept in ``path`` from byte ``offset`` on, and the offset to read from
    next time (after the last complete line). A missing file has no lines; a file that
    shrank since ``offset`` (a new run started afresh) is read from its start."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                offset = 0
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
    lines: list[LogLine] = []
    for raw in data[:end].split(b"\n"):
        if raw:
            try:
                lines.append(_decode(raw))
            except msgspec.DecodeError:
                continue  # a line cut short by a crash, followed by a later run's
    return lines, offset + end


def tail_logs(path: Path, last: int = 20) -> dict[str, list[LogLine]]:
    """Each phase's ``last`` lines kept in ``path`` (phases that printed nothing are
    absent)."""
    lines, _ = read_logs(path)
    tails: dict[str, deque[LogLine]] = {}
    for line in lines:
        tails.setdefault(line.phase, deque(maxlen=last)).append(line)
    return {phase: list(tail) for phase, tail in tails.items()}
