"""The process-wide plugin manager and executor registry, and which plugins are blocked.

Nothing here runs at import: the manager is created, and entry points are loaded, the
first time something asks for an executor or a hook. Built-in executors come from the
``phasewise`` distribution's own entry point (``builtin``), the same path a third party
uses. Each entry point is loaded on its own (``phasewise.plugins.loading``): a plugin
that fails is reported once, as a ``PluginWarning``, and the others load.

Plugins are blocked by name, before anything loads, by ``-p no:NAME`` on the command
line (``block_plugins``) and by ``PHASEWISE_DISABLE_PLUGINS``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any

from phasewise.plugins.loading import BUILTIN_MODULE, PhasewisePluginManager
from phasewise.plugins.records import PluginRecord
from phasewise.plugins.registry import ExecutorEntry, ExecutorRegistry

__all__ = [
    "BUILTIN_MODULE",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "ExecutorEntry",
    "ExecutorRegistry",
    "PhasewisePluginManager",
    "block_plugins",
    "blocked_plugins",
    "executor_registry",
    "lookup_executor",
    "plugin_manager",
    "plugin_records",
    "reset",
]

ENTRY_POINT_GROUP = "phasewise"
DISABLE_ENV = "PHASEWISE_DISABLE_PLUGINS"
"""Comma-separated entry-point names not to load (as ``-p no:NAME`` does)."""

_blocked_by_option: tuple[str, ...] = ()


def block_plugins(names: Iterable[str]) -> None:
    """Block the plugins ``names`` (``-p no:NAME``, each), as well as those that
    ``PHASEWISE_DISABLE_PLUGINS`` names. Replaces the names given before; if they
    change, the next use of the manager loads the plugins again."""
    global _blocked_by_option
    wanted = tuple(dict.fromkeys(names))
    if wanted != _blocked_by_option:
        _blocked_by_option = wanted
        reset()


def blocked_plugins() -> dict[str, str]:
    """The names of the plugins not to load, each with what blocks it."""
    blocked = {name: DISABLE_ENV
               for name in filter(None, (n.strip() for n in
                                         os.environ.get(DISABLE_ENV, "").split(",")))}
    blocked.update((name, f"-p no:{name}") for name in _blocked_by_option)
    return blocked


def _new_plugin_manager() -> PhasewisePluginManager:
    pm = PhasewisePluginManager()
    pm.load(ENTRY_POINT_GROUP, blocked_plugins())
    return pm


@functools.lru_cache(maxsize=1)
def plugin_manager() -> PhasewisePluginManager:
    """The process-wide plugin manager, created on first use."""
    return _new_plugin_manager()


@functools.lru_cache(maxsize=1)
def executor_registry() -> ExecutorRegistry:
    """The registry for this process, built on first use."""
    return ExecutorRegistry(plugin_manager())


def reset() -> None:
    """Forget the manager and the registry: the next use loads the plugins again."""
    executor_registry.cache_clear()
    plugin_manager.cache_clear()


def lookup_executor(name: str) -> Callable[..., Any]:
    """The factory a run calls for executor ``name``; an ``UnknownExecutorError`` lists
    the installed ones, the closest name, and the plugin that failed or is blocked."""
    return executor_registry().factory(name)


def plugin_records() -> list[PluginRecord]:
    """Every plugin: loaded, failed (at import or in its ``phasewise_executors`` hook) or
    blocked, with why."""
    registry = executor_registry()  # calls each plugin's hook: one that raises fails
    del registry
    return plugin_manager().all_records()
