"""Loading plugins from their entry points, one at a time, so that one bad plugin does
not take the others down with it (pluggy's ``load_setuptools_entrypoints`` stops at the
first that raises).

    entry point ── blocked? ──▶ record: blocked (why)
                └─ ep.load() ── raised? ──▶ record: failed (why) + one PluginWarning
                   pm.register ── raised? ──▶ record: failed (why) + one PluginWarning
                   record: loaded (distribution, version, hooks)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import traceback
from collections.abc import Mapping
from typing import Any

import pluggy

from phasewise.plugins import hookspecs
from phasewise.plugins.markers import PROJECT
from phasewise.plugins.records import BUILTIN, PluginRecord, warn

__all__ = [
    "BUILTIN_MODULE",
    "PhasewisePluginManager",
    "describe_exception",
    "hooks_of",
    "load_entry_points",
]

BUILTIN_MODULE = "phasewise.executors.builtin"


class PhasewisePluginManager(pluggy.PluginManager):
    """pluggy's manager for project ``phasewise``, keeping a record of every plugin it was
    asked to load: loaded, failed or blocked (``records``)."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []

    def load(self, group: str, blocked: Mapping[str, str]) -> None:
        """Load the plugins of entry-point ``group`` (see ``load_entry_points``)."""
        self.records = load_entry_points(self, group, blocked)

    def record_of(self, plugin: Any) -> PluginRecord:
        """The record of a registered plugin; one is made up for a plugin registered in
        code (phasewise's own module is distribution ``phasewise``)."""
        name = self.get_name(plugin) or repr(plugin)
        for record in self.records:
            if record.name == name and record.status == "loaded":
                return record
        if getattr(plugin, "__name__", "") == BUILTIN_MODULE:
            import phasewise

            return PluginRecord(name, BUILTIN_MODULE, "phasewise", phasewise.__version__,
                                hooks=hooks_of(self, plugin))
        return PluginRecord(name, hooks=hooks_of(self, plugin))

    def fail(self, plugin: Any, reason: str, trace: str = "", *,
             in_run: bool = False) -> PluginRecord:
        """One of ``plugin``'s hooks broke (``in_run``: one of its run hooks): unregister
        it, record why, warn once."""
        record = self.record_of(plugin)
        self.unregister(plugin)
        failed = _failed(record, reason, trace, in_run=in_run)
        self.records = [failed if r is record else r for r in self.records]
        if failed not in self.records:
            self.records.append(failed)
        return failed

    def all_records(self) -> list[PluginRecord]:
        """Every plugin: those from entry points (in load order), then those registered
        in code."""
        known = {r.name for r in self.records if r.status == "loaded"}
        extra = [self.record_of(p) for p in self.get_plugins()
                 if self.get_name(p) not in known]
        return [*self.records, *extra]


def describe_exception(exc: BaseException) -> str:
    """``Type: first line of the message``: an exception on one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def hooks_of(pm: pluggy.PluginManager, plugin: Any) -> tuple[str, ...]:
    """The names of the hooks ``plugin`` implements, sorted."""
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


def _record_of(entry_point: importlib.metadata.EntryPoint) -> PluginRecord:
    dist = getattr(entry_point, "dist", None)
    name = version = ""
    if dist is not None:
        name = dist.metadata["Name"] or getattr(dist, "name", "") or ""
        version = dist.version or ""
    return PluginRecord(entry_point.name, entry_point.value, name, version)


def _failed(record: PluginRecord, reason: str, trace: str = "", *,
            in_run: bool = False) -> PluginRecord:
    failed = record.failed(reason, trace, in_run=in_run)
    warn(failed.describe(), failed)
    return failed


def load_entry_points(pm: pluggy.PluginManager, group: str,
                      blocked: Mapping[str, str]) -> list[PluginRecord]:
    """Register every plugin of entry-point ``group`` with ``pm``, each on its own, and
    return a record of each: loaded, failed (warned about, once) or blocked.

    ``blocked`` maps the names not to load to what blocked them (``-p no:NAME``); a name
    that no entry point has is warned about. phasewise's own plugin is registered from
    its module when no entry point provides it (a source tree that was never
    installed), unless it is blocked."""
    records: list[PluginRecord] = []
    for name in blocked:
        pm.set_blocked(name)
    points = importlib.metadata.entry_points(group=group)
    # phasewise's own first, then by name: the same order wherever the distributions lie
    for entry_point in sorted(points, key=lambda ep: (ep.name != BUILTIN, ep.name)):
        records.append(_load_one(pm, entry_point, blocked))
    names = {record.name for record in records}
    if BUILTIN not in names and BUILTIN not in blocked:
        import phasewise

        module = importlib.import_module(BUILTIN_MODULE)
        pm.register(module, name=BUILTIN)
        records.insert(0, PluginRecord(BUILTIN, BUILTIN_MODULE, "phasewise",
                                       phasewise.__version__, hooks=hooks_of(pm, module)))
        names.add(BUILTIN)
    for name, source in blocked.items():
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warn(f"{source}: no installed plugin is named {name!r}{hint} "
                 f"(installed: {', '.join(sorted(names)) or 'none'})")
    return records


def _load_one(pm: pluggy.PluginManager, entry_point: importlib.metadata.EntryPoint,
              blocked: Mapping[str, str]) -> PluginRecord:
    record = _record_of(entry_point)
    if entry_point.name in blocked:
        return PluginRecord(record.name, record.value, record.distribution, record.version,
                            "blocked", blocked[entry_point.name])
    if pm.get_plugin(entry_point.name) is not None:
        return _failed(record, f"another plugin named {entry_point.name!r} is loaded already")
    try:
        plugin = entry_point.load()
    except (Exception, SystemExit) as exc:
        return _failed(record, describe_exception(exc), traceback.format_exc())
    try:
        pm.register(plugin, name=entry_point.name)
    except Exception as exc:  # pluggy.PluginValidationError: a hook with wrong arguments
        return _failed(record, describe_exception(exc), traceback.format_exc())
    return PluginRecord(record.name, record.value, record.distribution, record.version,
                        hooks=hooks_of(pm, plugin))
