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
#
# These fire for every run, ``phasewise run`` or ``pipeline.run(...)`` in a program
# alike. Each implementation is called on its own: one that raises is reported once (a
# PluginWarning naming its plugin) and switched off, and the run goes on. Return values
# are ignored. Hook wrappers are not supported on them.


@hookspec
def phasewise_run_start(pipeline: Pipeline, store: Store, executor: str) -> None:
    """A run of ``pipeline`` is starting on ``executor`` (its phases have not started).

    :param store: the run's Store; ``store.observe(callback)`` calls ``callback(action)``
        after every action is reduced, as it happens. The built-in progress reporter
        observes the store this way. Unlike this hook's implementations, such a callback
        is not isolated: one that raises breaks the dispatch of that action, so catch
        what it may raise (or implement ``phasewise_action``, which is isolated).
    """


@hookspec
def phasewise_action(pipeline: Pipeline, action: Action, state: PipelineState) -> None:
    """``action`` has just been reduced into ``state``.

    Called from whichever thread dispatched the action (a phase's log lines arrive from
    executor threads), one action at a time, in dispatch order; return quickly. Only
    plugins that implement this hook cost anything: with none, the run does not observe
    its actions for it.
    """


@hookspec
def phasewise_run_finish(
    pipeline: Pipeline, result: PipelineResult, error: BaseException | None
) -> None:
    """A run has ended, in any way: ``result.status`` says how, ``result.interrupted``
    whether Ctrl-C stopped it.

    :param error: what stopped the run, when something other than its phases did (the
        ``KeyboardInterrupt`` of Ctrl-C, an executor that could not start, ...), and the
        caller of ``Pipeline.run`` gets that exception next; ``None`` when the run went
        to its end.
    """
