"""The plugin manager and the executor registry built from it.

Nothing here runs at import: the manager is created, and entry points are loaded, the
first time something asks for an executor or a hook. Built-in executors come from the
``phasewise`` distribution's own entry point, the same path a third party uses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy

from phasewise.core.errors import PluginError, UnknownExecutorError
from phasewise.plugins import hookspecs
from phasewise.plugins.markers import PROJECT

__all__ = [
    "ENTRY_POINT_GROUP",
    "ExecutorEntry",
    "ExecutorRegistry",
    "executor_registry",
    "lookup_executor",
    "plugin_manager",
]

ENTRY_POINT_GROUP = "phasewise"
BUILTIN_MODULE = "phasewise.executors.builtin"
DISABLE_ENV = "PHASEWISE_DISABLE_PLUGINS"
"""Comma-separated entry-point names not to load (like pytest's ``-p no:NAME``)."""


def _new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(DISABLE_ENV, "").split(","))):
        pm.set_blocked(name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    registered = any(getattr(p, "__name__", "") == BUILTIN_MODULE for p in pm.get_plugins())
    if not registered and not pm.is_blocked("builtin"):
        # Running from a source tree that was never installed: no entry points exist.
        import importlib

        pm.register(importlib.import_module(BUILTIN_MODULE), name="builtin")
    return pm


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    return _new_plugin_manager()


@dataclass(frozen=True, slots=True)
class ExecutorEntry:
    """One registered executor: its factory and which plugin and distribution gave it."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str

    @property
    def description(self) -> str:
        doc = (getattr(self.factory, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


class ExecutorRegistry:
    """Executors by name, merged from every plugin's ``phasewise_executors`` hook."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
        entries: dict[str, ExecutorEntry] = {}
        impls = pm.hook.phasewise_executors.get_hookimpls()
        # built-ins first, then plugins in the order they were loaded
        impls.sort(key=lambda impl: getattr(impl.plugin, "__name__", "") != BUILTIN_MODULE)
        for impl in impls:
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            dist = dists.get(id(impl.plugin))
            dist_name = dist.project_name if dist is not None else "phasewise"
            provided = impl.function() or {}
            if not isinstance(provided, dict):
                raise PluginError(
                    f"plugin {plugin_name!r}: phasewise_executors() must return a dict "
                    f"of name -> factory, got {type(provided).__name__}"
                )
            for name, factory in provided.items():
                if name in entries:
                    raise PluginError(
                        f"executor {name!r} is registered by two plugins: "
                        f"{entries[name].plugin!r} ({entries[name].distribution}) and "
                        f"{plugin_name!r} ({dist_name}); uninstall or disable one "
                        f"(set {DISABLE_ENV}=<entry point name>)"
                    )
                entries[name] = ExecutorEntry(name, factory, plugin_name, dist_name)
        self._entries = entries

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[ExecutorEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> ExecutorEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownExecutorError(name, sorted(self._entries)) from None


@functools.lru_cache(maxsize=1)
def executor_registry() -> ExecutorRegistry:
    """The registry for this process, built on first use."""
    return ExecutorRegistry(plugin_manager())


def lookup_executor(name: str) -> Callable[..., Any]:
    """The factory of executor ``name``; ``UnknownExecutorError`` lists the installed ones."""
    return executor_registry().get(name).factory
