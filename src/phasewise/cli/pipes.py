"""Closed output pipes: ``phasewise run x.py 2>&1 | head -3`` keeps the run's exit code.

When the reader of stdout or stderr goes away, the next write there fails with EPIPE
(Python ignores SIGPIPE). Like other well-behaved command-line tools, phasewise then
stops writing to that stream and carries on: the pipeline runs to its end and the exit
code is the pipeline's, not 1 for a write nobody was going to read.

::

    sys.stdout / sys.stderr ──▶ PipeGuard.write ──▶ the original stream
                                   │ EPIPE
                                   ▼
                 os.dup2(/dev/null, fd)  (and every other std fd on the same pipe)
                 later writes, flushes at interpreter exit, C code, threads ─▶ /dev/null

The descriptor is pointed at ``/dev/null`` rather than closed so that nothing later —
a handler's ``print``, ``os.write(1, ...)``, the interpreter's final flush — fails.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["PipeGuard", "guard_std_streams", "is_broken_pipe", "silence_fd"]

_STD_FDS = (1, 2)
_lock = threading.Lock()


def is_broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` says the reading end of the pipe is gone."""
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE
    )


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISFIFO(info.st_mode) else None


def silence_fd(fd: int) -> None:
    """Point ``fd`` at /dev/null, and every std fd writing to the same pipe as ``fd``.

    With ``2>&1 |`` stdout and stderr are one pipe: when one of them breaks, the other
    is broken too, and is silenced before anything writes there.
    """
    with _lock:
        pipe = _identity(fd)
        fds = {fd} | {other for other in _STD_FDS if pipe is not None and _identity(other) == pipe}
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for target in sorted(fds):
                with contextlib.suppress(OSError):
                    os.dup2(devnull, target)
        finally:
            os.close(devnull)


class PipeGuard(io.TextIOBase):
    """Stands in for ``sys.stdout`` or ``sys.stderr``: passes everything through to the
    original stream until a write or flush fails with EPIPE, then silences the stream
    (``silence_fd``) and drops what is written from then on."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.broken = False

    def _break(self) -> None:
        if self.broken:
            return
        self.broken = True
        try:
            fd = self.original.fileno()
        except (AttributeError, OSError, ValueError):
            return  # not a real descriptor (a test's buffer): dropping writes is enough
        silence_fd(fd)
        with contextlib.suppress(OSError, ValueError):
            self.original.flush()  # what the failed write left buffered goes to /dev/null

    def write(self, text: str) -> int:  # type: ignore[override]
        if self.broken:
            return len(text)
        try:
            return self.original.write(text)
        except OSError as exc:
            if not is_broken_pipe(exc):
                raise
            self._break()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.original.flush()
        except OSError as exc:
            if not is_broken_pipe(exc):
                raise
            self._break()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.original, "errors", None)

    @property
    def buffer(self) -> Any:
        """The original's binary buffer, for code that writes bytes (unguarded)."""
        return self.original.buffer

    def __getattr__(self, name: str) -> Any:  # line_buffering, name, mode, reconfigure...
        return getattr(self.original, name)


@contextlib.contextmanager
def guard_std_streams() -> Iterator[None]:
    """Replace ``sys.stdout`` and ``sys.stderr`` by ``PipeGuard``s for the block."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, PipeGuard) and sys.stdout is not None:
        sys.stdout = PipeGuard(sys.stdout)
    if not isinstance(sys.stderr, PipeGuard) and sys.stderr is not None:
        sys.stderr = PipeGuard(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        # restore only what is still ours: a phase's capture may have replaced it meanwhile
        out, err = saved
        if isinstance(sys.stdout, PipeGuard) and sys.stdout.original is out:
            sys.stdout = out
        if isinstance(sys.stderr, PipeGuard) and sys.stderr.original is err:
            sys.stderr = err
