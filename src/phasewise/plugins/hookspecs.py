"""Every hook phasewise calls, grouped by when it fires.

A plugin is a module or object with functions marked ``@phasewise.hookimpl`` whose
names match these; it is found through the entry-point group ``phasewise``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phasewise.plugins.markers import hookspec

if TYPE_CHECKING:
    from phasewise.core.actions import Action
    from phasewise.core.model import Pipeline, PipelineResult
    from phasewise.core.state import PipelineState
    from phasewise.core.store import Store

__all__ = [
    "phasewise_action",
    "phasewise_executors",
    "phasewise_run_finish",
    "phasewise_run_start",
]

# ── registration ────────────────────────────────────────────────────────────


@hookspec
def phasewise_executors() -> dict[str, Any]:
    """Name the executors this plugin provides.

    Called once, the first time any executor is looked up (never at import), each
    plugin's implementation on its own.

    :returns: ``{name: factory}``; ``factory(max_workers=None, **options)`` returns an
        object with ``submit(task, emit) -> Future`` and ``shutdown(cancel=False)``. A
        factory's docstring's first line is shown by ``phasewise executors``. In place
        of a factory, ``phasewise.plugins.Unavailable(reason, install)`` lists the
        executor as unavailable (its backend is missing) with what to install.

    Results from every plugin are merged, built-ins first; a name two plugins give is a
    clash, and asking for it an ``ExecutorClashError`` naming both. An implementation
    that raises, or returns anything else, fails its plugin alone (one
    ``PluginWarning``; the plugin is unregistered).
    """


# ── observing a run ─────────────────────────────────────────────────────────


@hookspec
def phasewise_run_start(pipeline: Pipeline, store: Store, executor: str) -> None:
    """A run of ``pipeline`` is about to start on ``executor`` (from the CLI).

    :param store: the run's Store; ``store.observe(callback)`` calls ``callback(action)``
        after every action is reduced, as it happens.

    Every implementation is called; return values are ignored.
    """


@hookspec
def phasewise_action(pipeline: Pipeline, action: Action, state: PipelineState) -> None:
    """``action`` has just been reduced into ``state``, during a run started by the CLI.

    Called from whichever thread dispatched the action (a phase's log lines arrive from
    executor threads), in dispatch order; return quickly. Only plugins that implement
    this hook cost anything: with none, the CLI does not observe actions for it.

    Every implementation is called; return values are ignored.
    """


@hookspec
def phasewise_run_finish(pipeline: Pipeline, result: PipelineResult) -> None:
    """A run started by the CLI has ended, in any way (``result.status`` says which).

    Every implementation is called; return values are ignored.
    """
