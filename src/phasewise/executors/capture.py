"""Capturing what a handler prints, for executors that run handlers in this process.

While any phase captures, ``sys.stdout`` and ``sys.stderr`` are replaced by routers
that send each write to the sink registered for the writing thread, and pass writes
from every other thread through untouched. Two phases on two threads therefore never
see each other's lines. Output written straight to file descriptor 1 or 2 (C code,
child processes) and output from threads the handler starts is not seen here; the
process and subprocess executors capture at the file-descriptor level instead.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from phasewise.core.wire import Log

__all__ = ["LineSplitter", "capture_thread_output"]


class LineSplitter:
    """Turns written text into whole lines and emits them as ``wire.Log`` events."""

    __slots__ = ("_emit", "_partial", "_stream")

    def __init__(self, stream: str, emit: Callable[[Any], None]) -> None:
        self._stream = stream
        self._emit = emit
        self._partial = ""

    def write(self, text: str) -> None:
        if "\n" not in text:
            self._partial += text
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self._emit(Log(self._stream, [line.rstrip("\r") for line in lines], time.monotonic()))

    def close(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._emit(Log(self._stream, [partial.rstrip("\r")], time.monotonic()))


class _Router(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr while phases capture."""

    def __init__(self, original: TextIO, stream: str) -> None:
        self.original = original
        self.stream = stream

    def write(self, text: str) -> int:
        sinks = _sinks.get(threading.get_ident())
        if sinks is None:
            return self.original.write(text)
        sinks[0 if self.stream == "stdout" else 1].write(text)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _sinks:
            self.original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_lock = threading.Lock()
_sinks: dict[int, tuple[LineSplitter, LineSplitter]] = {}
_installed: tuple[_Router, _Router] | None = None


@contextmanager
def capture_thread_output(emit: Callable[[Any], None]) -> Iterator[None]:
    """Send what this thread prints, line by line, to ``emit`` as ``wire.Log`` events."""
    global _installed
    ident = threading.get_ident()
    sinks = (LineSplitter("stdout", emit), LineSplitter("stderr", emit))
    with _lock:
        if _installed is None:
            _installed = (_Router(sys.stdout, "stdout"), _Router(sys.stderr, "stderr"))
            sys.stdout, sys.stderr = _installed
        _sinks[ident] = sinks
    try:
        yield
    finally:
        with _lock:
            del _sinks[ident]
            if not _sinks and _installed is not None:
                out, err = _installed
                # restore only what is still ours: someone may have replaced it meanwhile
                if sys.stdout is out:
                    sys.stdout = out.original
                if sys.stderr is err:
                    sys.stderr = err.original
                _installed = None
        for sink in sinks:
            sink.close()
