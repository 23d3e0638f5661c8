"""What a worker needs from its parent before it unpickles a task, and the guard that
keeps a script from multiplying itself.

cloudpickle sends a function that can be imported (one defined in a module of the
user's: a sibling of their script, a test module) by reference, so a worker unpickles it
by importing that module. A worker phasewise starts afresh (the subprocess executor, a
forkserver or spawn pool worker) has an import path of its own, not its parent's. Before
its first task it is sent the parent's, as ``multiprocessing``'s spawn sends its
preparation data::

    parent: prepare_message()  ── wire.Prepare ──▶  worker: apply(message)

Relative entries (``''`` for ``python -c``, say) are made absolute against the parent's
working directory, so a worker started elsewhere (``-O cwd=...``) imports the same
modules. A worker running another Python (``-O python=...``) takes the parent's entries
except those of the parent's own installation (its stdlib and site-packages).

Importing a module runs its top-level code. A script without an ``if __name__ ==
"__main__":`` guard that starts a pipeline when imported would, in every worker that
imports it to unpickle a handler, start the pipeline again, whose workers import it
again, without end. ``check_can_start_processes``, which every executor that starts
processes calls before it starts any, refuses (``BootstrapError``):

* while the code asking is the top-level code of a module being imported (so the same
  script fails the same way in the parent, whatever start method a pool would use);
* in a worker still unpickling its task (``unpickling``);
* ``MAX_DEPTH`` worker processes down: a handler may run a pipeline of its own on a
  process executor, and a handler of that one too, but not without end.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from phasewise.core import framing, wire
from phasewise.core.errors import BootstrapError

__all__ = [
    "MAX_DEPTH",
    "apply",
    "check_can_start_processes",
    "describe_unpickling_error",
    "prepare_message",
    "prepared_run",
    "unpickling",
    "worker_depth",
]

MAX_DEPTH = 3
"""How many worker processes deep a run may still start worker processes: a top-level
run's workers are at depth 1, the workers of a run one of their handlers starts at 2."""

_depth = 0  # how many worker processes deep this process is (0: not a worker)
_unpickling: str | None = None  # the phase whose task this worker is unpickling


def worker_depth() -> int:
    """0 in a process phasewise did not start as a worker; 1 in a top-level run's workers."""
    return _depth


def prepare_message() -> wire.Prepare:
    """What a worker of this process needs before its first task (see the module doc)."""
    entries = tuple(dict.fromkeys(os.path.abspath(entry or os.curdir) for entry in sys.path))
    own = _installation_dirs()
    interpreter = tuple(e for e in entries if any(_inside(e, d) for d in own))
    return wire.Prepare(entries, interpreter, sys.prefix, _depth + 1, os.getpid())


def _installation_dirs() -> set[str]:
    dirs = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    try:
        dirs.add(site.getusersitepackages())
    except Exception:  # site may be stripped down in embedded interpreters
        pass
    return {os.path.abspath(d) for d in dirs if d}


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def apply(message: wire.Prepare) -> None:
    """Take the parent's import path: its entries first, in its order, then this
    process's own others. Another Python keeps its own installation's entries. A message
    this process made itself (a payload run where it was made) changes nothing."""
    global _depth
    if message.pid == os.getpid():
        return
    _depth = message.depth
    wanted = list(message.sys_path)
    if os.path.abspath(message.prefix) != os.path.abspath(sys.prefix):
        theirs = set(message.interpreter)
        wanted = [entry for entry in wanted if entry not in theirs]
    taken = set(wanted)
    sys.path[:] = wanted + [entry for entry in sys.path if entry not in taken]


def prepared_run(payload: bytes | bytearray | memoryview) -> wire.Run:
    """Apply the Prepare frames of a task's payload (``Task.payload``); return its Run
    (``ValueError`` if it holds none)."""
    run = None
    for message in framing.MessageReader().feed(payload):
        if isinstance(message, wire.Prepare):
            apply(message)
        elif isinstance(message, wire.Run):
            run = message
    if run is None:
        raise ValueError("not a task payload: it holds no wire.Run frame")
    return run


@contextmanager
def unpickling(phase: str) -> Iterator[None]:
    """Mark this worker as unpickling ``phase``'s task: no processes may start meanwhile."""
    global _unpickling
    before, _unpickling = _unpickling, phase
    try:
        yield
    finally:
        _unpickling = before


def check_can_start_processes(executor: str) -> None:
    """Raise ``BootstrapError`` if starting worker processes here would multiply the
    user's script (see the module docstring)."""
    importing = _module_being_imported()
    guard = "add `if __name__ == \"__main__\":` around the code that runs the pipeline"
    if importing is not None:
        where = f"in the worker unpickling phase {_unpickling!r}, " if _unpickling else ""
        raise BootstrapError(executor, (
            f"refusing to start worker processes {where}while {importing} is being "
            "imported: an attempt has been made to start a pipeline before the process "
            f"has finished its bootstrapping. Every worker that imports {importing} would "
            f"start the pipeline again; in {importing}, {guard}"))
    if _unpickling is not None:
        raise BootstrapError(executor, (
            f"refusing to start worker processes in a worker that is still unpickling "
            f"phase {_unpickling!r}: the module defining its handler starts a pipeline "
            f"when it is imported; {guard}"))
    if _depth >= MAX_DEPTH:
        raise BootstrapError(executor, (
            f"refusing to start worker processes {_depth} worker processes deep "
            f"(at most {MAX_DEPTH}): pipelines started from handlers nest too deeply"))


def _module_being_imported() -> str | None:
    """The file of the module whose top-level code is running, mid-import, on this
    thread's stack (innermost first), or None."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            spec = frame.f_globals.get("__spec__")
            if spec is not None and getattr(spec, "_initializing", False):
                return str(frame.f_globals.get("__file__") or frame.f_globals.get("__name__"))
        frame = frame.f_back
    return None


def describe_unpickling_error(phase: str, exc: BaseException) -> str:
    """Why a worker could not unpickle ``phase``'s task, and what to do about it."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (f"phase {phase!r} could not be unpickled in the worker: its handler or "
                f"context needs module {exc.name!r}, which the worker's Python "
                f"({sys.executable}) cannot import; install it there, or put the directory "
                "that holds it on PYTHONPATH")
    return (f"phase {phase!r} could not be unpickled in the worker: "
            f"{type(exc).__name__}: {exc}")
