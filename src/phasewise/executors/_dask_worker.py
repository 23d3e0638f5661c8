"""What runs on a dask worker for the dask executor: each task in a child process.

    dask worker thread: run_task(payload, topic, task_id, inputs)
        ──▶ worker.log_event(topic, {task, start: this worker's address})
        inputs (kept results, resolved by dask here) ──▶ files in this worker's folder
        child = an idle child, or Popen(python -c CHILD ...)   (own session)
        payload ──▶ child's task pipe          child: phasewise.executors.worker.serve
                                               (an Input in its context: load_input)
        Log frames ◀── result pipe ──▶ worker.log_event(topic, {task, seq, stream, lines})
        Result|Error frames ◀──        ──▶ log_event(topic, {task, end, sent, size,
                                           reply if small}); returned as bytes
    kill_task(task_id)  (client.run, on a timeout / cancel): SIGKILL the child's session

A thread on a dask worker cannot be stopped, so the handler runs in a child process of
the worker (``phasewise.executors.worker``, the subprocess executor's worker), reused for
the next task once it has replied; killing it stops the phase's code for sure. A child
watches its parent and kills its own session when the dask worker is gone. Imported on
the workers by reference (phasewise must be installed there); it imports distributed
only inside ``run_task``.

A dependency's result kept on the cluster reaches the task as ``inputs`` (dask fetches
it from the worker that holds it); ``run_task`` writes each to a file of this worker's
own folder, and the handler's context holds an ``Input`` in its place, which unpickles,
in the child, as the value read from that file.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phasewise.core import framing, wire
from phasewise.core.errors import WireError
from phasewise.executors._exits import describe_exit
from phasewise.executors._syscalls import write_all

__all__ = ["Input", "dask_setup", "kill_task", "load_input", "release_children", "run_task"]

INLINE_REPLY = 16_384
"""Bytes up to which a reply also rides on the task's end event (the scheduler keeps
the last 1000 events of a topic until the executor forgets its topic at shutdown)."""
INPUTS_ENV = "PHASEWISE_DASK_INPUTS"
"""The environment variable that tells a child the folder its inputs are written to."""

_SRC_DIR = str(Path(__file__).resolve().parents[2])  # the directory that holds phasewise/

CHILD = """
import os, signal, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.2)
    os.killpg(0, signal.SIGKILL)   # the dask worker is gone: so is this phase
threading.Thread(target=watch, daemon=True).start()
from phasewise.executors.worker import main
sys.exit(main(sys.argv[2:]))
"""


class _Child:
    """A worker child process and its two pipes."""

    def __init__(self) -> None:
        task_r, self.task_w = os.pipe()
        self.result_r, result_w = os.pipe()
        env = dict(os.environ)
        paths = [_SRC_DIR, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env[INPUTS_ENV] = _inputs_folder()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(os.getpid()), str(task_r), str(result_w)],
                pass_fds=(task_r, result_w), start_new_session=True,
                stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            os.close(self.task_w)
            os.close(self.result_r)
            raise
        finally:
            os.close(task_r)
            os.close(result_w)
        self.reader = framing.MessageReader()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill it, reap it, close the pipes."""
        self.kill()
        self.process.wait()
        for fd in (self.task_w, self.result_r):
            try:
                os.close(fd)
            except OSError:
                pass


_lock = threading.Lock()
_idle: list[_Child] = []
_running: dict[str, _Child] = {}
_killed: collections.deque[str] = collections.deque(maxlen=1024)  # kills that came first


def _take(task_id: str) -> _Child:
    with _lock:
        child = _idle.pop() if _idle else None
    if child is None or child.process.poll() is not None:
        if child is not None:
            child.close()
        child = _Child()
    with _lock:
        _running[task_id] = child
        killed = task_id in _killed
    if killed:
        child.kill()
    return child


class Input:
    """In a context the parent pickles: the result of dependency ``name``, which the
    worker wrote to the file ``key`` of its inputs folder. Unpickled, it is that value."""

    __slots__ = ("key", "name")

    def __init__(self, key: str, name: str) -> None:
        self.key, self.name = key, name

    def __reduce__(self) -> Any:
        return load_input, (self.key, self.name)


def load_input(key: str, name: str) -> Any:
    """The value of the input ``key`` (the result of phase ``name``), in a child."""
    from phasewise.executors.reply import reply_value

    path = Path(os.environ[INPUTS_ENV]) / key
    return reply_value(path.read_bytes(), name, "dask")


_using_inputs = 0  # this worker's tasks whose inputs are in its folder


def _inputs_folder() -> str:
    """This worker process's folder for inputs (it exists while a task has inputs)."""
    return os.path.join(tempfile.gettempdir(), f"phasewise-dask-inputs-{os.getpid()}")


def _write_inputs(inputs: Mapping[str, Any]) -> list[Path]:
    """Write each input's reply bytes to the file its key names, in the folder (made
    here, 0700, refused if it is not this user's own)."""
    global _using_inputs
    folder = Path(_inputs_folder())
    with _lock:
        _using_inputs += 1
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            st = folder.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise PermissionError(f"{folder} is not a folder of this user's alone: "
                                      "refusing to write a phase's inputs there")
        except BaseException:
            _using_inputs -= 1
            raise
    paths: list[Path] = []
    try:
        for key, (status, data, _, _) in inputs.items():
            path = folder / key
            paths.append(path)
            path.write_bytes(data if status == "reply" else b"")
    except BaseException:  # the disk is full, say: nothing written stays, the count drops
        _remove_inputs(paths)
        raise
    return paths


def _remove_inputs(paths: list[Path]) -> None:
    global _using_inputs
    for path in paths:
        path.unlink(missing_ok=True)
    with _lock:
        _using_inputs -= 1
        if not _using_inputs:
            shutil.rmtree(_inputs_folder(), ignore_errors=True)


def run_task(payload: bytes, topic: str, task_id: str, inputs: Mapping[str, Any] | None = None
             ) -> tuple[str, bytes | str, int, str]:
    """Run one ``Task.payload`` in a child process of this dask worker.

    Each ``Log`` the child sends goes to the parent at once as a worker event on
    ``topic``, and the last event says how it ended (``end``: ``result``, ``error`` or
    ``died``; ``sent``: how many Log events; ``size``: the reply's bytes; ``reply``: the
    reply itself, if at most INLINE_REPLY bytes). ``inputs`` maps
    the keys of the payload's ``Input`` objects to what ``run_task`` returned for them.
    Returns ``(status, data, events, worker)``: ``("reply", reply bytes, …)`` or
    ``("died", why, …)``, with how many Log events were sent and this worker's address."""
    from distributed import get_worker

    worker = get_worker()
    address = str(worker.address)
    worker.log_event(topic, {"task": task_id, "start": address})
    end, data, sent = _run(worker, payload, topic, task_id, inputs or {})
    event: dict[str, Any] = {"task": task_id, "end": end, "sent": sent,
                             "size": len(data) if end != "died" else 0}
    if end != "died" and len(data) <= INLINE_REPLY:
        event["reply"] = data  # the parent need not fetch it: one round trip less
    worker.log_event(topic, event)
    return "died" if end == "died" else "reply", data, sent, address


def _run(worker: Any, payload: bytes, topic: str, task_id: str,
         inputs: Mapping[str, Any]) -> tuple[str, bytes | str, int]:
    """``(end, data, sent)``: end is ``result`` or ``error`` (data: the reply's bytes) or
    ``died`` (data: why)."""
    files: list[Path] | None = None
    child, sent, reply, end = _take(task_id), 0, None, "died"
    try:
        files = _write_inputs(inputs) if inputs else None
        try:
            write_all(child.task_w, payload)
        except OSError:
            pass  # it died: its exit status says why
        while reply is None:
            n = os.readv(child.result_r, [child.reader.buffer()])
            if not n:
                break
            for message in child.reader.filled(n):
                if isinstance(message, wire.Log):
                    worker.log_event(topic, {"task": task_id, "seq": sent,
                                             "stream": message.stream,
                                             "lines": list(message.lines)})
                    sent += 1
                elif isinstance(message, (wire.Result, wire.Error)):
                    reply = b"".join(framing.encode_parts(message))
                    end = "result" if isinstance(message, wire.Result) else "error"
    except WireError as exc:
        return "died", f"its worker sent a {exc}", sent
    finally:
        if files is not None:
            _remove_inputs(files)
        with _lock:
            _running.pop(task_id, None)
            keep = reply is not None and not child.reader.pending and len(_idle) < 64
            if keep:
                _idle.append(child)
        if not keep:
            child.close()
    if reply is None:
        code = child.process.returncode
        return "died", describe_exit("", child.process.pid, code).split(": ", 1)[-1], sent
    return end, reply, sent


def kill_task(task_id: str) -> bool:
    """Kill the child running ``task_id`` here (``client.run``); True if there was one."""
    with _lock:
        child = _running.get(task_id)
        if child is None:
            _killed.append(task_id)
    if child is not None:
        child.kill()
    return child is not None


def dask_setup(worker: Any) -> None:
    """A worker preload (the LocalCluster's; ``dask worker --preload
    phasewise.executors._dask_worker`` elsewhere): Ctrl-C is the parent's to handle, so
    a worker in the terminal's process group does not die of it before its phases are
    killed and the cluster is closed; and a child per worker thread is started now, in
    the background, so that the first phases need not wait for one."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        pass
    threads = int(getattr(getattr(worker, "state", None), "nthreads", 1) or 1)
    threading.Thread(target=_prestart, args=(threads,), daemon=True,
                     name="phasewise-prestart").start()


def _prestart(n: int) -> None:
    for _ in range(n):
        try:
            child = _Child()
        except OSError:
            return
        with _lock:
            _idle.append(child)


def release_children() -> int:
    """Stop the idle children of this worker (at the executor's shutdown); how many."""
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for child in idle:
        child.close()
    return len(idle)
