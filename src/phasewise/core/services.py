"""What core needs from the outer parts, without importing them.

``core`` imports nothing from ``executors``, ``plugins``, ``durable`` or ``cli``. The
package root (``phasewise/__init__.py``) installs here how to find an executor by name
(the plugin registry) and how to open a work directory (``phasewise.durable``);
``Pipeline.run`` and ``build_saga`` use them unless they are handed their own.

A work directory is seen through two small protocols: a ``RunRecord`` keeps one run
(journal, state file, stored results) and says which phases completed before (resume);
a ``PhaseCache`` answers whether a phase's result is already known.

Every run is also shown to whatever observes runs (the plugins' run hooks, installed
by the root as ``set_run_observer``): ``observe_run`` when it starts, and the function it
returns when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from phasewise.core.errors import PhasewiseError, PluginError
from phasewise.core.executor import ExecutorFactory, ExecutorLookup

if TYPE_CHECKING:
    from phasewise.core.phase import Phase
    from phasewise.core.state import PipelineState
    from phasewise.core.store import Store

__all__ = [
    "PhaseCache",
    "PhaseFolders",
    "RunEnded",
    "RunObserver",
    "RunRecord",
    "WorkdirOpener",
    "lookup_executor",
    "observe_run",
    "open_workdir",
    "set_executor_lookup",
    "set_run_observer",
    "set_workdir_support",
    "temporary_folders",
]


class PhaseCache(Protocol):
    """Results of earlier runs, by phase definition and inputs."""

    def lookup(self, phase: Phase, context: Mapping[str, Any] | None,
               params: Mapping[str, Any] | None) -> tuple[bool, Any]:
        """``(True, result)`` if a stored result for these inputs is still good."""
        ...

    def store(self, phase: Phase, context: Mapping[str, Any] | None,
              params: Mapping[str, Any] | None, result: Any) -> None:
        """Keep ``result`` for the next run (a result that cannot be stored is skipped)."""
        ...


class PhaseFolders(Protocol):
    """Where each phase keeps its files: ``<run workdir>/<phase>/``, or a temporary one."""

    def folder(self, phase: str) -> Path:
        """The phase's folder, created if it does not exist yet."""
        ...

    def close(self) -> None:
        """The run has ended (temporary folders are removed)."""
        ...


class RunRecord(Protocol):
    """One run kept in a work directory."""

    completed: Mapping[str, Any]
    """Results of phases that completed in the run this one resumes: not run again."""

    cache: PhaseCache | None
    """Where cached phases look for their results (None: caching is off)."""

    folders: PhaseFolders
    """The phases' folders, under the work directory."""

    def attach(self, store: Store) -> None:
        """Record every transition dispatched to ``store`` from now on."""
        ...

    def close(self, state: PipelineState) -> None:
        """The run has ended (in any way): write the final state, release the directory."""
        ...


WorkdirOpener = Callable[..., RunRecord]
"""``opener(pipeline, workdir, *, resume, cache, params) -> RunRecord``."""

RunEnded = Callable[[Any, "BaseException | None"], None]
"""``ended(result, error)``: the run is over; ``error`` is what escaped it, if anything
did (``KeyboardInterrupt`` on Ctrl-C), and ``result`` is built from the state then."""

RunObserver = Callable[[Any, "Store", str], "RunEnded | None"]
"""``observer(pipeline, store, executor) -> ended``, called as a run starts; None
means nothing watches this run."""

_lookup: ExecutorLookup | None = None
_opener: WorkdirOpener | None = None
_temporary: Callable[[], PhaseFolders] | None = None
_observer: RunObserver | None = None


def set_executor_lookup(lookup: ExecutorLookup) -> None:
    global _lookup
    _lookup = lookup


def lookup_executor(name: str) -> ExecutorFactory:
    if _lookup is None:
        raise PluginError("no executor registry is installed (import phasewise first)")
    return _lookup(name)


def set_workdir_support(opener: WorkdirOpener, temporary: Callable[[], PhaseFolders]) -> None:
    """Install how to open a work directory, and how to make temporary phase folders."""
    global _opener, _temporary
    _opener, _temporary = opener, temporary


def open_workdir(pipeline: Any, workdir: Any, *, resume: bool, cache: bool,
                 params: Mapping[str, Any]) -> RunRecord:
    if _opener is None:
        raise PhasewiseError("no work directory support is installed (import phasewise first)")
    return _opener(pipeline, workdir, resume=resume, cache=cache, params=params)


def temporary_folders() -> PhaseFolders:
    """Phase folders for a run without a work directory, removed when it ends."""
    if _temporary is None:
        raise PhasewiseError("no work directory support is installed (import phasewise first)")
    return _temporary()


def set_run_observer(observer: RunObserver | None) -> None:
    """Install what every run is shown to (None: nothing is)."""
    global _observer
    _observer = observer


def observe_run(pipeline: Any, store: Store, executor: str) -> RunEnded | None:
    """Show a starting run to the installed observer; returns what to call when it ends,
    or None when nothing watches it."""
    return None if _observer is None else _observer(pipeline, store, executor)
