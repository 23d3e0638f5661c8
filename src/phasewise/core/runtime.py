"""Where core finds executors by name, without importing the plugin layer.

``core`` imports nothing from ``executors``, ``plugins`` or ``cli``. The package root
(``phasewise/__init__.py``) installs the plugin registry's lookup here; ``Pipeline.run``
and ``build_saga`` use it unless they are handed a lookup of their own.
"""

from __future__ import annotations

from phasewise.core.errors import PluginError
from phasewise.core.executor import ExecutorFactory, ExecutorLookup

__all__ = ["lookup_executor", "set_executor_lookup"]

_lookup: ExecutorLookup | None = None


def set_executor_lookup(lookup: ExecutorLookup) -> None:
    global _lookup
    _lookup = lookup


def lookup_executor(name: str) -> ExecutorFactory:
    if _lookup is None:
        raise PluginError("no executor registry is installed (import phasewise first)")
    return _lookup(name)
