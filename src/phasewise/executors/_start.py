"""Starting a process pool's workers and stopping its helper processes.

Which start method a pool uses (``auto``: fork while the process has one thread, else
the forkserver), and the forkserver and resource tracker that multiprocess starts for
forkserver and spawn workers: shared by every pool, stopped when the last one using
them shuts down, so that no process outlives a run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "START_METHODS",
    "forkserver_users",
    "main_module_hidden",
    "single_threaded",
    "stop_helper",
    "wait_thread_gone",
]


START_METHODS = ("auto", "forkserver", "spawn", "fork")


def single_threaded() -> bool:
    """Whether this process has a single thread, as the kernel counts them (so threads
    started by C libraries count too); False where that cannot be told."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def wait_thread_gone(thread: threading.Thread, seconds: float = 0.1) -> None:
    """Wait until the kernel no longer lists a joined thread (it lingers a moment after
    ``join`` returns), so that the next pool can see a single-threaded process and fork."""
    path = f"/proc/self/task/{thread.native_id}"
    deadline = time.monotonic() + seconds
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.0005)


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """Keep a spawned or forkserver worker from re-running the parent's ``__main__`` script.

    multiprocess re-imports the main module in such workers so that pickles referring to
    it resolve; cloudpickle sends ``__main__``'s functions by value, so workers never
    need it — and re-running a script without an ``if __name__ == "__main__"`` guard
    would run the user's pipeline again inside every worker.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__")
                             if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


_forkserver_lock = threading.Lock()
_forkserver_count = 0
_tracker_is_ours = False


def forkserver_users(delta: int) -> None:
    """Count pools using the forkserver (or spawn); when the last one shuts down, stop the
    server, and multiprocess's resource tracker if it was not running before the first
    pool — both are children of this process that would otherwise outlive the run."""
    global _forkserver_count, _tracker_is_ours
    with _forkserver_lock:
        if _forkserver_count == 0 and delta > 0:
            from multiprocess import resource_tracker

            _tracker_is_ours = getattr(resource_tracker._resource_tracker, "_fd", 0) is None
        _forkserver_count += delta
        if _forkserver_count == 0:
            from multiprocess import forkserver, resource_tracker

            # Its workers are gone and it holds no state: a SIGKILL spares waiting ~20 ms
            # for its interpreter to tear itself down.
            stop_helper(forkserver._forkserver, "_forkserver_pid", kill=True)
            if _tracker_is_ours:
                stop_helper(resource_tracker._resource_tracker, "_pid")
            _tracker_is_ours = False


def stop_helper(helper: Any, pid_attribute: str, *, kill: bool = False,
                 seconds: float = 2.0) -> None:
    """Stop a multiprocess helper process (forkserver, resource tracker) and reap it.

    With ``kill`` it is SIGKILLed at once; otherwise it is asked to stop, and SIGKILLed
    only if it has not gone within ``seconds``."""
    stop = getattr(helper, "_stop", None)
    if stop is None:
        return
    pid = getattr(helper, pid_attribute, None)
    if kill:
        _kill_helper(pid)
    stopper = threading.Thread(target=stop, name="phasewise-stop-helper", daemon=True)
    stopper.start()
    stopper.join(seconds)
    if stopper.is_alive():
        _kill_helper(pid)
        stopper.join(seconds)
    wait_thread_gone(stopper)  # so that the next pool can still fork


def _kill_helper(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
