"""What runs inside a worker process: read a task, run it, stream its output, reply.

    parent ──Prepare, Run…──▶ [read fd]  serve ─▶ run_payload  [write fd] ──Log…, Result|Error──▶
                                                     │
                 fd 1 ─┐ (dup2'd onto pipes while a capturing task runs)
                 fd 2 ─┴─▶ pump threads ── whole lines ──▶ emit(Log)

``run_payload(payload, emit)`` is the one way a task runs in a worker: phasewise's own
workers (``serve``, for the process pool and the subprocess executor) call it, and so can
a plugin's worker anywhere phasewise is installed (a cluster node, a container).

Output is captured at the file-descriptor level, so what C extensions and child
processes write to fd 1/2 is captured too. Each pump sends whatever lines one read()
returned as one Log: a single line goes out at once when the pipe is quiet, and lines
batch up by themselves under load. Undecodable bytes become U+FFFD; a line longer than
``MAX_LINE`` bytes is split, never dropped.

Frames never go to the worker's own stdout, which may be captured. This module keeps
its imports small: ``python -m phasewise.executors.worker`` is what the subprocess
executor starts for every phase.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from phasewise.core import bootstrap, framing, wire
from phasewise.core.errors import BootstrapError, WireError
from phasewise.executors._pickling import dump_result  # here: preloaded in the forkserver
from phasewise.executors._syscalls import write_all

__all__ = [
    "MAX_LINE",
    "FdCapture",
    "FrameWriter",
    "main",
    "process_worker_main",
    "run_payload",
    "serve",
]

MAX_LINE = 64 * 1024
_READ = 64 * 1024


class FrameWriter:
    """Writes whole frames to a file descriptor; safe to share between threads.

    A large Result goes out in blocks (``framing.encode_parts``), written straight from the
    memory of the value it carries."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: wire.Message) -> None:
        """Write ``message``: one frame, or a Result's blocks, not interleaved with any other
        message; ``WireError``, and nothing written, if it is too large for the wire."""
        parts = framing.encode_parts(message)
        with self._lock:
            if len(parts) == 1:
                write_all(self._fd, parts[0])
            else:
                _writev_all(self._fd, parts)


try:
    _IOV_MAX = max(16, os.sysconf("SC_IOV_MAX"))  # 16: POSIX's minimum
except (ValueError, OSError):
    _IOV_MAX = 16


def _writev_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` in order, resuming after partial writes."""
    views = [memoryview(part) for part in parts]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while first < len(views) and written >= views[first].nbytes:
            written -= views[first].nbytes
            first += 1
        if written:
            views[first] = views[first][written:]


def _cut(data: bytes, limit: int) -> int:
    """Where to split an over-long line: at ``limit``, moved back off a UTF-8 continuation byte."""
    cut = limit
    while cut > limit - 4 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


def _split(line: bytes) -> list[bytes]:
    """``line`` in pieces of at most ``MAX_LINE`` bytes."""
    parts = []
    while len(line) > MAX_LINE:
        cut = _cut(line, MAX_LINE)
        parts.append(line[:cut])
        line = line[cut:]
    parts.append(line)
    return parts


def _pump(fd: int, stream: str, emit: Callable[[wire.Log], object]) -> None:
    """Read ``fd`` until EOF, emitting complete lines as Log events."""
    partial = b""
    try:
        while True:
            chunk = os.read(fd, _READ)
            if not chunk:
                break
            pieces = (partial + chunk).split(b"\n")
            partial = pieces.pop()
            if pieces and len(pieces[0]) > MAX_LINE:
                # an over-long line ended in this chunk: only the first piece can be one,
                # the others lie within the chunk (_READ <= MAX_LINE)
                pieces[:1] = _split(pieces[0])
            while len(partial) > MAX_LINE:
                cut = _cut(partial, MAX_LINE)
                pieces.append(partial[:cut])
                partial = partial[cut:]
            if pieces:
                lines = [p.decode("utf-8", "replace").rstrip("\r") for p in pieces]
                emit(wire.Log(stream, lines, time.monotonic()))
        if partial:
            emit(wire.Log(stream, [partial.decode("utf-8", "replace")], time.monotonic()))
    finally:
        os.close(fd)


class FdCapture:
    """While active, fds 1 and 2 feed pump threads that send whole lines to ``emit`` as
    ``wire.Log`` events. It takes over the whole process's fds: nest it, but do not run
    two at once on two threads (``run_payload`` takes care of that)."""

    DRAIN_SECONDS = 2.0
    """How long to wait, after the handler returns, for the pipes to close: a child process
    the handler left running may hold them open."""

    def __init__(self, emit: Callable[[wire.Log], object]) -> None:
        self._emit = emit
        self._saved: list[tuple[int, int]] = []
        self._pumps: list[threading.Thread] = []

    def __enter__(self) -> FdCapture:
        _flush_std()
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            self._saved.append((fd, os.dup(fd)))
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(target=_pump, args=(read_end, stream, self._emit),
                                    name=f"phasewise-{stream}", daemon=True)
            pump.start()
            self._pumps.append(pump)
        return self

    def __exit__(self, *exc: object) -> None:
        _flush_std()
        for fd, saved in self._saved:
            os.dup2(saved, fd)  # closes our last write end of the pipe: the pump sees EOF
            os.close(saved)
        deadline = time.monotonic() + self.DRAIN_SECONDS
        for pump in self._pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
        self._saved, self._pumps = [], []


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


_handlers: dict[bytes, Any] = {}
_HANDLER_CACHE = 128


def _load_handler(data: bytes) -> Any:
    """Unpickle a handler, reusing the last ones seen (phases often share a handler)."""
    import cloudpickle

    handler = _handlers.get(data)
    if handler is None:
        handler = cloudpickle.loads(data)
        if len(_handlers) >= _HANDLER_CACHE:
            _handlers.pop(next(iter(_handlers)))
        _handlers[data] = handler
    return handler


_capture_lock = threading.RLock()  # FdCapture takes the process's fds: one task at a time


def run_payload(payload: bytes | bytearray | memoryview | wire.Run,
                emit: Callable[[wire.Log], object]) -> wire.Result | wire.Error:
    """Run one task here, as phasewise's own workers do, and return the reply to send back.

    ``payload`` is a ``Task.payload``: its ``wire.Prepare`` frame is applied first (this
    process takes the parent's import path, see ``phasewise.core.bootstrap``), then its
    ``wire.Run`` frame is run. A worker that reads a stream of frames passes each
    ``wire.Run`` it decodes instead, and applies each ``Prepare`` itself
    (``bootstrap.apply``), as ``serve`` does.

    The handler and its arguments are unpickled under ``bootstrap.unpickling`` (a module
    that starts a pipeline when imported is refused), and the handler is called. If the
    Run asks for capture, whatever is written to file descriptors 1 and 2 while it runs
    — C extensions and child processes included — reaches ``emit`` as ``wire.Log``
    events, whole lines in order per stream, from helper threads, as the lines appear;
    all of them before this returns, but for those of a child process the handler left
    running with the pipes open (after ``FdCapture.DRAIN_SECONDS``, they may come
    later). Capture takes over the process's fds, so capturing tasks run one at a time
    in a process; threads running tasks that do not capture are not held up. Nothing is
    emitted without capture, and ``wire.Started`` never: that is the executor's.

    Returns the reply: ``wire.Result``, the return value pickled with protocol 5 (its
    ``buffers`` are views of the value's own memory: send it before anything changes the
    value), or ``wire.Error``: the handler raised (any exception, BaseExceptions
    included: type, message, and the traceback from the handler's frame down), or the
    task or its result would not pickle. Send it with ``framing.encode_parts(reply)``; the
    parent turns it into the value or the right exception with
    ``phasewise.executors.reply_value``. Raises only if ``payload`` holds no Run
    (``ValueError``) or is malformed (``WireError``).
    """
    import cloudpickle

    from phasewise.core.task import call_handler, handler_traceback

    message = payload if isinstance(payload, wire.Run) else bootstrap.prepared_run(payload)
    try:
        with bootstrap.unpickling(message.phase):
            handler = _load_handler(message.handler)
            arguments = cloudpickle.loads(message.arguments) if message.arguments else None
    except BootstrapError as exc:  # the handler's module starts a pipeline when imported
        return wire.Error("BootstrapError", exc.detail, "")
    except BaseException as exc:
        return wire.Error("SerializationError",
                          bootstrap.describe_unpickling_error(message.phase, exc),
                          traceback.format_exc())
    try:
        if message.capture:
            with _capture_lock, FdCapture(emit):
                result = call_handler(handler, arguments)
        else:
            result = call_handler(handler, arguments)
    except BootstrapError as exc:  # a pipeline the handler started refused to start
        return wire.Error("BootstrapError", exc.detail, handler_traceback(exc))
    except BaseException as exc:
        return wire.Error(type(exc).__name__, str(exc), handler_traceback(exc))
    try:
        return dump_result(result)
    except BaseException as exc:
        return wire.Error("SerializationError",
                          f"the result of phase {message.phase!r} ({type(result).__name__}) "
                          f"cannot be pickled: {type(exc).__name__}: {exc}", "")


def serve(read_fd: int, write_fd: int) -> None:
    """Run tasks read from ``read_fd`` until it reaches EOF, or until the parent has gone
    (its end of the result pipe closed): either way there is no one left to answer."""
    reader, writer = framing.MessageReader(), FrameWriter(write_fd)
    try:
        while True:
            n = os.readv(read_fd, [reader.buffer()])
            if not n:
                return
            for message in reader.filled(n):
                if isinstance(message, wire.Run):
                    _reply(message, writer)
                elif isinstance(message, wire.Prepare):
                    bootstrap.apply(message)
    except BrokenPipeError:
        return


def _reply(message: wire.Run, writer: FrameWriter) -> None:
    reply = run_payload(message, writer.send)
    try:
        writer.send(reply)
    except WireError as exc:  # too large for a frame: nothing was sent, say so instead
        writer.send(wire.Error("SerializationError",
                               f"the result of phase {message.phase!r} cannot be sent to the "
                               f"parent: {exc}", ""))


def _prepare_process() -> None:
    """Ctrl-C is the parent's to handle; ``sys.stdout``/``sys.stderr`` write to fds 1/2 (a
    forked worker inherits whatever the parent had put there); lines reach the pipes as
    they are printed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        try:
            on_fd = stream is not None and stream.fileno() == fd
        except (AttributeError, OSError, ValueError):
            on_fd = False
        if not on_fd:
            try:
                stream = open(fd, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
            except OSError:
                continue
            setattr(sys, name, stream)
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def process_worker_main(task_conn: Any, result_conn: Any, inherited: tuple[int, ...] = ()) -> None:
    """Entry point of a process-pool worker (started by multiprocess); ``inherited`` are the
    parent's file descriptors a forked worker must close."""
    for fd in inherited:
        try:
            os.close(fd)
        except OSError:
            pass
    os.setpgid(0, 0)  # own process group: a timeout kills the worker and its children
    # The pool starts its workers as daemons (so none outlives the parent), and multiprocess
    # forbids a daemon children of its own: a handler running a pipeline on a process pool
    # needs them. The pool stops its workers itself.
    process = sys.modules.get("multiprocess.process")
    if process is not None:
        process.current_process()._config.pop("daemon", None)
    # Leave what the worker inherited out of its garbage collections: walking the parent's
    # objects would touch, and so copy, every page of them a forked worker shares.
    gc.freeze()
    _prepare_process()
    serve(task_conn.fileno(), result_conn.fileno())


def main(argv: list[str] | None = None) -> int:
    """``python -m phasewise.executors.worker READ_FD WRITE_FD`` (the subprocess executor)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m phasewise.executors.worker READ_FD WRITE_FD", file=sys.stderr)
        return 2
    _prepare_process()
    serve(int(args[0]), int(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
