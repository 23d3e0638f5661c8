"""The executor protocol, what an executor plugin is written with, and the built-ins.

Write an executor on these names (``docs/plugins.md`` walks through one):

* ``Executor`` — the protocol; ``BaseExecutor`` — an optional base with its boring parts;
* ``Task`` — what ``submit`` receives; ``Started`` and ``Log`` — the events ``emit`` takes;
* ``CancellableFuture`` — a future whose ``cancel()`` stops a running task;
* ``run_payload`` — run a ``Task.payload`` in a worker, capturing and streaming its
  output; ``reply_value`` — the parent's side: the value, or the exception;
* ``RemotePhaseError`` — a future raising it shows the remote traceback.

Imported lazily: ``phasewise.executors.ProcessExecutor`` loads multiprocess only when
asked for, and ``import phasewise`` loads none of this.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from phasewise.core.executor import Executor

if TYPE_CHECKING:
    from phasewise.core.errors import RemotePhaseError
    from phasewise.core.task import Task
    from phasewise.core.wire import Log, Started
    from phasewise.executors.base import BaseExecutor
    from phasewise.executors.dask import DaskExecutor
    from phasewise.executors.future import CancellableFuture
    from phasewise.executors.inline import InlineExecutor
    from phasewise.executors.process import ProcessExecutor
    from phasewise.executors.reply import reply_value
    from phasewise.executors.subprocess import SubprocessExecutor
    from phasewise.executors.thread import ThreadExecutor
    from phasewise.executors.worker import run_payload

__all__ = [
    "BaseExecutor",
    "CancellableFuture",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "Log",
    "ProcessExecutor",
    "RemotePhaseError",
    "Started",
    "SubprocessExecutor",
    "Task",
    "ThreadExecutor",
    "reply_value",
    "run_payload",
]

_LAZY = {
    "BaseExecutor": "phasewise.executors.base",
    "CancellableFuture": "phasewise.executors.future",
    "DaskExecutor": "phasewise.executors.dask",
    "InlineExecutor": "phasewise.executors.inline",
    "Log": "phasewise.core.wire",
    "ProcessExecutor": "phasewise.executors.process",
    "RemotePhaseError": "phasewise.core.errors",
    "Started": "phasewise.core.wire",
    "SubprocessExecutor": "phasewise.executors.subprocess",
    "Task": "phasewise.core.task",
    "ThreadExecutor": "phasewise.executors.thread",
    "reply_value": "phasewise.executors.reply",
    "run_payload": "phasewise.executors.worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'phasewise.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


def _drop_without_dask() -> None:
    """``DaskExecutor`` is exported only when dask.distributed is installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        __all__.remove("DaskExecutor")
        del _LAZY["DaskExecutor"]


_drop_without_dask()
