"""Plugin layer: hook specifications, the plugin manager and the executor registry.

What a plugin author uses from here (imported on first access):

* ``Unavailable`` — what ``phasewise_executors()`` gives for an executor it cannot
  provide here (a missing backend), with the fix ``phasewise executors`` shows;
* ``PluginRecord`` — what ``phasewise plugins`` shows of each plugin;
* ``PluginWarning`` — the warning a plugin that fails is reported with, once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phasewise.plugins.records import PluginRecord, PluginWarning
    from phasewise.plugins.registry import Unavailable

__all__ = ["PluginRecord", "PluginWarning", "Unavailable"]

_LAZY = {
    "PluginRecord": "phasewise.plugins.records",
    "PluginWarning": "phasewise.plugins.records",
    "Unavailable": "phasewise.plugins.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'phasewise.plugins' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
