"""SubprocessExecutor: a fresh Python interpreter for every phase.

    submit ─▶ thread: Popen(python -m phasewise.executors.worker R W, own session)
                        ├─ Prepare, Run ──▶ pipe R (then closed: the worker exits after one task)
                        └─ Log…, Result|Error ◀── pipe W, read to EOF, then wait()

Nothing is shared between phases — right for phases that leak memory, change global
state, or must run under another interpreter or virtualenv (``python=``; it needs
phasewise installed). ``env=`` adds variables to the child's environment, ``cwd=`` sets
its working directory. Before its task, the child is given this process's import path
(``phasewise.core.bootstrap``), so handlers defined in modules next to the user's script
unpickle there too. Cancelling a running task (timeout, Ctrl-C) kills the child's
whole session: SIGTERM, then SIGKILL after ``kill_grace`` seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from phasewise.core import bootstrap, framing, wire
from phasewise.core.errors import ExecutorError, SerializationError, WireError, WorkerDied
from phasewise.core.task import Task
from phasewise.executors._exits import describe_exit, describe_unfinished
from phasewise.executors._pickling import run_frame
from phasewise.executors._syscalls import signal_group, write_all
from phasewise.executors.base import BaseExecutor
from phasewise.executors.future import CancellableFuture
from phasewise.executors.reply import reply_value

__all__ = ["SubprocessExecutor"]

_SRC_DIR = str(Path(__file__).resolve().parents[2])  # the directory that holds phasewise/


class _ChildFuture(CancellableFuture):
    """A CancellableFuture that knows its child process, once started."""

    def __init__(self, kill: Callable[[CancellableFuture], None], phase: str) -> None:
        super().__init__(kill, phase)
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = False


def _interpreter(python: str | None) -> str:
    """The path of the Python to run, or ``ExecutorError`` naming the option."""
    if python is None:
        return sys.executable
    found = shutil.which(python)
    if found is None:
        raise ExecutorError("subprocess", f"python={python!r}: no such interpreter "
                            "(give the path of a Python with phasewise installed)", "python")
    return found


class SubprocessExecutor(BaseExecutor):
    """Runs every phase in a fresh Python interpreter."""

    crosses_processes = True

    def __init__(
        self,
        max_workers: int | None = None,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        kill_grace: float = 0.5,
    ) -> None:
        bootstrap.check_can_start_processes("subprocess")
        self.max_workers = max_workers
        self.python = _interpreter(python)
        if cwd is not None and not os.path.isdir(cwd):
            raise ExecutorError("subprocess", f"cwd={str(cwd)!r} is not a directory", "cwd")
        self.cwd = cwd
        self.kill_grace = kill_grace
        child_env = dict(os.environ)
        if python is None:  # make sure the child finds this phasewise, installed or not
            paths = [_SRC_DIR, *filter(None, child_env.get("PYTHONPATH", "").split(os.pathsep))]
            child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        child_env.update(env or {})
        self.env = child_env
        self._prepare = wire.encode(bootstrap.prepare_message())
        self._lock = threading.Lock()
        self._running: set[_ChildFuture] = set()
        self._threads: set[threading.Thread] = set()

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future = _ChildFuture(self._kill, task.phase)
        frame = run_frame(task)
        if isinstance(frame, SerializationError):
            future.set_exception(frame)
            return future
        with self._lock:
            self.check_open()  # shutdown takes the running tasks under this lock
            future.set_running_or_notify_cancel()
            thread = threading.Thread(target=self._run, args=(future, frame, emit),
                                      name=f"phasewise-subprocess-{task.phase}", daemon=True)
            self._running.add(future)
            self._threads.add(thread)
        thread.start()
        return future

    def _run(self, future: _ChildFuture, frame: bytes, emit: Callable[[Any], None]) -> None:
        try:
            outcome = self._run_child(future, frame, emit)
        except BaseException as exc:
            outcome = exc
        with self._lock:
            self._running.discard(future)
            self._threads.discard(threading.current_thread())
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _run_child(self, future: _ChildFuture, frame: bytes, emit: Callable[[Any], None]) -> Any:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            process = subprocess.Popen(
                [self.python, "-m", "phasewise.executors.worker", str(task_r), str(result_w)],
                pass_fds=(task_r, result_w), start_new_session=True,
                stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
            )
        except OSError as exc:  # not this phase's fault: no phase can start
            os.close(task_w)
            os.close(result_r)
            raise ExecutorError("subprocess", f"cannot start {self.python}: {exc}") from exc
        finally:
            os.close(task_r)
            os.close(result_w)
        future.process = process
        if future.killed:  # cancelled while starting
            self._kill(future)
        try:
            try:
                write_all(task_w, self._prepare + frame)
            except OSError:
                pass  # the child died before reading; its exit status says why
            finally:
                os.close(task_w)
            reply, unfinished = self._read_replies(future, result_r, emit)
            if isinstance(reply, WireError):  # the task has failed: do not wait for the child
                signal_group(process.pid, signal.SIGKILL)
        finally:
            os.close(result_r)
            process.wait()
            signal_group(process.pid, signal.SIGKILL)  # whatever the phase left behind
        if isinstance(reply, (wire.Result, wire.Error)):
            return reply_value(reply, future.phase, "subprocess")
        if isinstance(reply, BaseException):
            raise reply
        if future.killed:
            raise WorkerDied(f"phase {future.phase!r} was cancelled", future.phase)
        raise WorkerDied(describe_exit(future.phase, process.pid, process.returncode)
                         + unfinished, future.phase)

    @staticmethod
    def _read_replies(future: _ChildFuture, fd: int,
                      emit: Callable[[Any], None]) -> tuple[Any, str]:
        """The child's reply (or the WireError its frames earned), read to EOF, and what
        it left half-sent, in words."""
        reader, reply = framing.MessageReader(), None
        while True:
            n = os.readv(fd, [reader.buffer()])
            if not n:
                return reply, describe_unfinished(reader)
            try:
                for message in reader.filled(n):
                    if isinstance(message, wire.Log):
                        emit(message)
                    else:
                        reply = message
            except WireError as exc:
                return WireError(f"phase {future.phase!r}: worker sent a {exc}"), ""

    def _kill(self, future: CancellableFuture) -> None:
        assert isinstance(future, _ChildFuture)
        future.killed = True
        process = future.process
        if process is None or process.poll() is not None:
            return
        signal_group(process.pid, signal.SIGTERM)
        timer = threading.Timer(self.kill_grace, signal_group, (process.pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def close(self, cancel: bool) -> None:
        """Wait for the running children (``cancel``: kill them first)."""
        with self._lock:
            running, threads = list(self._running), list(self._threads)
        try:
            if cancel:
                for future in running:
                    self._kill(future)
            deadline = time.monotonic() + self.kill_grace + 5.0
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:  # interrupted while stopping: stop everything now
            for future in running:
                if future.process is not None:
                    signal_group(future.process.pid, signal.SIGKILL)
            raise
        for future in [f for f in running if not f.done()]:  # still running: no waiting
            self._kill(future)
