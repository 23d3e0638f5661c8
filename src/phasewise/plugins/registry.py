"""The executor registry: executors by name, merged from every plugin's
``phasewise_executors`` hook, each hook called on its own.

    each plugin's phasewise_executors() ── raised / not {name: factory}? ──▶ plugin failed
        {name: factory}          ──▶ ExecutorEntry            (one PluginWarning)
        {name: Unavailable(...)} ──▶ ExecutorEntry, unavailable (listed, with its fix)
        a name two plugins give  ──▶ a clash: asking for it is an error naming both

``get(name)`` is the entry or an ``UnknownExecutorError`` that says what to do (the
closest name, the plugin that failed, the package to install, the plugins that clash);
``factory(name)`` is what a run calls: a third-party factory is wrapped so that an
executor that cannot be made names its plugin.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phasewise.core.errors import ExecutorError, PhasewiseError, UnknownExecutorError
from phasewise.plugins.errors import ExecutorClashError, ExecutorUnavailableError, clash_message
from phasewise.plugins.loading import BUILTIN_MODULE, PhasewisePluginManager, describe_exception
from phasewise.plugins.records import BUILTIN, PluginRecord, warn

__all__ = ["ORIGIN_ATTRIBUTE", "ExecutorEntry", "ExecutorRegistry", "PluginFactory",
           "Unavailable"]

ORIGIN_ATTRIBUTE = "phasewise_plugin"
"""Set on each executor a third-party factory makes: the plugin that made it, which the
run names when the executor's ``submit`` breaks."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """What ``phasewise_executors()`` gives, in place of a factory, for an executor the
    plugin cannot provide here (its backend library is missing). The executor is listed,
    marked unavailable with ``install``, the fix; asking for it is an error saying so::

        @phasewise.hookimpl
        def phasewise_executors():
            missing = Unavailable.unless_importable("distributed", "pip install 'phasewise[dask]'")
            return {"dask": missing or make_dask_executor}
    """

    reason: str
    """Why it cannot be used here: ``dask.distributed is not installed``."""
    install: str = ""
    """How to make it available: ``pip install 'phasewise[dask]'``."""

    @classmethod
    def unless_importable(cls, module: str, install: str = "") -> Unavailable | None:
        """None if ``module`` can be imported here (it is not imported), else an
        ``Unavailable`` saying it is not installed."""
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        return None if found else cls(f"{module} is not installed", install)

    def describe(self) -> str:
        """``unavailable: pip install ... (why)``, as ``phasewise executors`` shows it."""
        if self.install:
            return f"unavailable: {self.install} ({self.reason})"
        return f"unavailable: {self.reason}"


@dataclass(frozen=True, slots=True)
class ExecutorEntry:
    """One registered executor: its factory (None when ``unavailable``) and which plugin
    and distribution gave it."""

    name: str
    factory: Callable[..., Any] | None
    plugin: str
    distribution: str
    version: str = ""
    unavailable: Unavailable | None = None

    @property
    def description(self) -> str:
        """The first line of the factory's docstring, or why it is unavailable."""
        if self.unavailable is not None:
            return self.unavailable.describe()
        doc = (getattr(self.factory, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def origin(self) -> str:
        """``plugin 'NAME' (distribution VERSION)``."""
        return PluginRecord(self.plugin, distribution=self.distribution,
                            version=self.version).origin


class PluginFactory:
    """A third-party executor factory as a run calls it: an executor that cannot be made
    names its plugin. Options it refuses (``TypeError``, ``ValueError``) keep their type,
    with the plugin added to the message; anything else it raises becomes an
    ``ExecutorError``; so does what it returns if that has no ``submit``."""

    __slots__ = ("entry",)

    def __init__(self, entry: ExecutorEntry) -> None:
        self.entry = entry

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return getattr(self.entry.factory, "__doc__", None)

    def __call__(self, max_workers: int | None = None, **options: Any) -> Any:
        entry = self.entry
        assert entry.factory is not None
        try:
            executor = entry.factory(max_workers=max_workers, **options)
        except (TypeError, ValueError) as exc:  # its options: ExecutorOptionsError says so
            if len(exc.args) <= 1:
                exc.args = (f"{exc} ({entry.origin})",)
            raise
        except PhasewiseError:
            raise
        except Exception as exc:
            raise ExecutorError(entry.name, f"its factory, from {entry.origin}, raised "
                                f"{describe_exception(exc)}") from exc
        if not callable(getattr(executor, "submit", None)):
            raise ExecutorError(entry.name, f"its factory, from {entry.origin}, returned "
                                f"{type(executor).__name__}, which has no submit() method")
        try:
            setattr(executor, ORIGIN_ATTRIBUTE, entry.origin)
        except (AttributeError, TypeError):
            pass  # slots: the run names its class instead
        return executor


class ExecutorRegistry:
    """Executors by name, merged from every plugin's ``phasewise_executors`` hook.

    A plugin whose hook raises, or returns anything but ``{name: factory or
    Unavailable}``, is reported (one ``PluginWarning``), unregistered and left out; the
    others are not affected. A name two plugins give is a clash, warned about; asking
    for it is an ``ExecutorClashError`` naming both."""

    def __init__(self, pm: PhasewisePluginManager) -> None:
        self._pm = pm
        self._entries: dict[str, ExecutorEntry] = {}
        self._clashes: dict[str, list[ExecutorEntry]] = {}
        self._factories: dict[str, Callable[..., Any]] = {}
        impls = pm.hook.phasewise_executors.get_hookimpls()
        # built-ins first, then plugins in the order they were loaded
        impls.sort(key=lambda impl: getattr(impl.plugin, "__name__", "") != BUILTIN_MODULE)
        for impl in impls:
            self._add(impl.plugin, impl.function)
        for name, entries in self._clashes.items():
            warn(clash_message(name, tuple(self._record(e) for e in entries)))

    def _add(self, plugin: Any, hook: Callable[[], Any]) -> None:
        record = self._pm.record_of(plugin)
        try:
            provided = hook()
        except Exception as exc:
            self._pm.fail(plugin, f"its phasewise_executors() raised {describe_exception(exc)}",
                          traceback.format_exc())
            return
        problem = _malformed(provided)
        if problem:
            self._pm.fail(plugin, f"its phasewise_executors() returned {problem}")
            return
        for name, value in (provided or {}).items():
            unavailable = value if isinstance(value, Unavailable) else None
            entry = ExecutorEntry(name, None if unavailable else value, record.name,
                                  record.distribution, record.version, unavailable)
            if name in self._entries:
                self._clashes.setdefault(name, [self._entries[name]]).append(entry)
            else:
                self._entries[name] = entry

    @staticmethod
    def _record(entry: ExecutorEntry) -> PluginRecord:
        return PluginRecord(entry.plugin, distribution=entry.distribution,
                            version=entry.version)

    def names(self) -> list[str]:
        """The executors that can be used, built-ins first."""
        return [name for name, entry in self._entries.items()
                if entry.unavailable is None and name not in self._clashes]

    def entries(self) -> list[ExecutorEntry]:
        """Every executor, one entry per name (the first plugin's, for a clash), those
        marked unavailable included."""
        return list(self._entries.values())

    def clashes(self) -> dict[str, list[ExecutorEntry]]:
        """Names given by more than one plugin, with every plugin's entry."""
        return {name: list(entries) for name, entries in self._clashes.items()}

    def get(self, name: str) -> ExecutorEntry:
        """The entry of executor ``name``, usable; else an ``UnknownExecutorError`` (an
        ``ExecutorUnavailableError`` or ``ExecutorClashError``) saying what to do."""
        entry = self._entries.get(name)
        if entry is None:
            raise self._unknown(name)
        if name in self._clashes:
            raise ExecutorClashError(name, sorted(self.names()),
                                     tuple(self._record(e) for e in self._clashes[name]))
        missing = entry.unavailable
        if missing is not None:
            detail = f"{missing.reason} (it comes from {entry.origin})"
            if missing.install:
                detail += f"; {missing.install}"
            raise ExecutorUnavailableError(name, sorted(self.names()), detail,
                                           self._record(entry))
        return entry

    def factory(self, name: str) -> Callable[..., Any]:
        """What a run calls to make executor ``name``: a built-in's factory itself, a
        third-party one wrapped in a ``PluginFactory``."""
        made = self._factories.get(name)
        if made is None:
            entry = self.get(name)
            assert entry.factory is not None
            made = entry.factory if entry.plugin == BUILTIN else PluginFactory(entry)
            self._factories[name] = made
        return made

    def _unknown(self, name: str) -> UnknownExecutorError:
        available = sorted(self.names())
        records = self._pm.all_records()
        for record in records:  # the plugin that would have provided it
            if record.status != "loaded" and _would_provide(record, name):
                detail = record.describe()
                if record.status == "failed":
                    detail += " (`phasewise plugins -v` shows the traceback)"
                return ExecutorUnavailableError(name, available, detail, record)
        error = UnknownExecutorError(name, available)
        close = difflib.get_close_matches(name, list(self._entries), n=1)
        message = f"unknown executor {name!r}"
        if close:
            message += f" (did you mean {close[0]!r}?)"
        message += f"; installed executors: {', '.join(available) or 'none'}"
        failed = [r.origin for r in records if r.status == "failed"]
        if failed:
            message += (f"; plugins that failed to load: {', '.join(failed)} "
                        f"(see `phasewise plugins`)")
        error.args = (message,)
        return error


def _would_provide(record: PluginRecord, name: str) -> bool:
    """Whether ``record``'s plugin looks like the one for executor ``name``: its entry
    point is named so, or its distribution is ``phasewise-NAME`` (or it is phasewise's own,
    which provides it)."""
    if record.name == BUILTIN:  # phasewise's own: its names are known without loading it
        return name in importlib.import_module(BUILTIN_MODULE).phasewise_executors()
    dist = record.distribution.lower().replace("_", "-").replace(".", "-")
    return record.name == name or dist == f"phasewise-{name.lower()}"


def _malformed(provided: Any) -> str:
    """What is wrong with a ``phasewise_executors()`` result ("" if nothing)."""
    if provided is None:
        return ""
    if not isinstance(provided, dict):
        return f"{type(provided).__name__}, not a dict of name -> factory"
    for name, value in provided.items():
        if not isinstance(name, str) or not name:
            return f"the name {name!r}: executor names are non-empty strings"
        if not (callable(value) or isinstance(value, Unavailable)):
            return f"a {type(value).__name__} for {name!r}, not a factory or Unavailable"
    return ""
