"""What phasewise knows of each plugin: a ``PluginRecord`` (loaded, failed or blocked,
and why), and the ``PluginWarning`` a plugin that failed is reported with, once."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Literal

from phasewise.core.errors import PhasewiseWarning

__all__ = ["BUILTIN", "PluginRecord", "PluginStatus", "PluginWarning", "warn"]

BUILTIN = "builtin"
"""The entry-point name of phasewise's own plugin (its built-in executors)."""

PluginStatus = Literal["loaded", "failed", "blocked"]


@dataclass(frozen=True, slots=True)
class PluginRecord:
    """One plugin: the entry point it came from and what became of it.

    ``status`` is ``loaded``, ``failed`` (``reason`` says why: its import, or one of its
    hooks, raised) or ``blocked`` (``reason`` names the ``-p no:NAME`` or variable that
    blocked it). ``hooks`` are the hooks it implements; ``traceback`` is that of the
    failure, for ``-v``. ``distribution`` is empty for a plugin registered in code."""

    name: str
    value: str = ""
    distribution: str = ""
    version: str = ""
    status: PluginStatus = "loaded"
    reason: str = ""
    hooks: tuple[str, ...] = ()
    traceback: str = ""
    in_run: bool = False
    """It failed during a run (one of its run hooks raised), not while loading."""

    @property
    def origin(self) -> str:
        """``plugin 'NAME' (distribution VERSION)``, as messages name it."""
        where = " ".join(filter(None, (self.distribution, self.version)))
        return f"plugin {self.name!r}" + (f" ({where})" if where else "")

    def failed(self, reason: str, traceback: str = "", *, in_run: bool = False) -> PluginRecord:
        """This record, marked failed for ``reason``."""
        return replace(self, status="failed", reason=reason, traceback=traceback,
                       in_run=in_run)

    def describe(self) -> str:
        """One line: ``plugin 'x' (dist 1.0) failed to load: ImportError: ...``."""
        if self.status == "failed" and self.in_run:
            return f"{self.origin} failed during the run, and is switched off: {self.reason}"
        if self.status == "failed":
            return f"{self.origin} failed to load: {self.reason}"
        if self.status == "blocked":
            return f"{self.origin} is blocked by {self.reason}"
        return f"{self.origin} is loaded"


class PluginWarning(PhasewiseWarning):
    """A plugin failed (or two disagree): one line naming it; ``plugin`` is its record,
    when there is one (``plugin.traceback`` is what ``-v`` shows)."""

    def __init__(self, message: str, plugin: PluginRecord | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


def warn(message: str, plugin: PluginRecord | None = None) -> None:
    """Issue a ``PluginWarning`` (reported once: each message is its own)."""
    warnings.warn(PluginWarning(message, plugin), stacklevel=3)
