"""Built-in executors and the Executor protocol.

Imported lazily: ``phasewise.executors.ProcessExecutor`` loads multiprocess only when
asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from phasewise.core.executor import Executor

if TYPE_CHECKING:
    from phasewise.executors.inline import InlineExecutor
    from phasewise.executors.process import ProcessExecutor
    from phasewise.executors.subprocess import SubprocessExecutor
    from phasewise.executors.thread import ThreadExecutor

__all__ = [
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "SubprocessExecutor",
    "ThreadExecutor",
]

_LAZY = {
    "InlineExecutor": "phasewise.executors.inline",
    "ProcessExecutor": "phasewise.executors.process",
    "SubprocessExecutor": "phasewise.executors.subprocess",
    "ThreadExecutor": "phasewise.executors.thread",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'phasewise.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
