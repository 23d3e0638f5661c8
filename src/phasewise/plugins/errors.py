"""Why an executor name cannot be turned into an executor, beyond its being unknown.

::

    PluginError                      (phasewise.core.errors)
     └── UnknownExecutorError        no installed plugin provides the name
          ├── ExecutorUnavailableError  its plugin says it cannot work here (a missing
          │                             backend), or the plugin that would provide it
          │                             failed to load
          └── ExecutorClashError        two plugins provide the name

Both are kinds of ``UnknownExecutorError``, so whatever handles an executor that cannot be had
(``phasewise run`` exits with 2) handles them too; their messages say what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phasewise.core.errors import UnknownExecutorError

if TYPE_CHECKING:
    from phasewise.plugins.records import PluginRecord

__all__ = ["ExecutorClashError", "ExecutorUnavailableError"]


class ExecutorUnavailableError(UnknownExecutorError):
    """Executor ``name`` cannot be used here: ``plugin`` (its record) declared it
    unavailable, or failed to load. ``detail`` says why and how to fix it."""

    def __init__(self, name: str, available: list[str], detail: str,
                 plugin: PluginRecord | None = None) -> None:
        super().__init__(name, available)
        self.detail = detail
        self.plugin = plugin
        self.args = (f"executor {name!r} is not available: {detail}",)


class ExecutorClashError(UnknownExecutorError):
    """Two or more plugins (``plugins``, their records) provide executor ``name``."""

    def __init__(self, name: str, available: list[str],
                 plugins: tuple[PluginRecord, ...]) -> None:
        super().__init__(name, available)
        self.plugins = plugins
        self.args = (clash_message(name, plugins),)


def clash_message(name: str, plugins: tuple[PluginRecord, ...]) -> str:
    """``executor 'x' is registered by two plugins: 'a' (dist-a 1.0) and ...``."""
    def one(record: PluginRecord) -> str:
        where = " ".join(filter(None, (record.distribution, record.version)))
        return f"{record.name!r}" + (f" ({where})" if where else "")

    count = "two" if len(plugins) == 2 else str(len(plugins))
    names = ", ".join(one(p) for p in plugins[:-1]) + f" and {one(plugins[-1])}"
    return (f"executor {name!r} is registered by {count} plugins: {names}; uninstall one, "
            f"or block one with -p no:NAME (or PHASEWISE_DISABLE_PLUGINS=NAME)")
