"""Showing every run to the plugins that observe runs, so that one that breaks does not
break the run.

    Pipeline.run ── services.observe_run ──▶ observe_run(pipeline, store, executor)
        phasewise_run_start   each implementation on its own
        phasewise_action      per action, only if some plugin implements it
        phasewise_run_finish  when the run ends, in any way

pluggy calls a hook's implementations in one go, and the first that raises stops the
others and reaches the caller: for these hooks, that caller is a running pipeline (or
an executor's thread dispatching a log line). So each implementation is called here on
its own, in pluggy's order; one that raises is reported once (a ``PluginWarning`` naming
the plugin), unregistered, and not called again, and the run goes on.

A run that no plugin observes costs one look at the three hooks when it starts.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from phasewise.core.store import Store
from phasewise.plugins.loading import PhasewisePluginManager, describe_exception

__all__ = ["observe_run"]


def observe_run(pipeline: Any, store: Store,
                executor: str) -> Callable[[Any, BaseException | None], None] | None:
    """Call the plugins' ``phasewise_run_start``, observe ``store`` for their
    ``phasewise_action``, and return what calls their ``phasewise_run_finish`` (None if
    no plugin implements any of the three)."""
    from phasewise.plugins.manager import plugin_manager

    pm = plugin_manager()
    hook = pm.hook
    starts = _in_call_order(hook.phasewise_run_start)
    actions = _in_call_order(hook.phasewise_action)
    finishes = _in_call_order(hook.phasewise_run_finish)
    if not (starts or actions or finishes):
        return None
    calls = _IsolatedCalls(pm)
    calls.each(starts, "phasewise_run_start",
               {"pipeline": pipeline, "store": store, "executor": executor})
    stop_observing: Callable[[], None] | None = None
    if actions:
        def on_action(action: Any) -> None:
            calls.each(actions, "phasewise_action",
                       {"pipeline": pipeline, "action": action, "state": store.state})

        stop_observing = store.observe(on_action)

    def ended(result: Any, error: BaseException | None) -> None:
        if stop_observing is not None:
            stop_observing()
        calls.each(finishes, "phasewise_run_finish",
                   {"pipeline": pipeline, "result": result, "error": error})

    return ended


def _in_call_order(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """The hook's implementations in the order pluggy would call them (last registered
    first, ``tryfirst``/``trylast`` respected)."""
    return list(reversed(caller.get_hookimpls()))


class _IsolatedCalls:
    """Calls implementations one at a time; a plugin whose implementation raised is
    failed (``PhasewisePluginManager.fail``: warned about once, unregistered) and
    skipped from then on."""

    def __init__(self, pm: PhasewisePluginManager) -> None:
        self._pm = pm
        self._failed: set[int] = set()
        self._lock = threading.Lock()

    def each(self, impls: Sequence[pluggy.HookImpl], name: str,
             arguments: dict[str, Any]) -> None:
        for impl in impls:
            if id(impl.plugin) in self._failed:
                continue
            try:
                impl.function(*[arguments[arg] for arg in impl.argnames])
            except Exception as exc:
                self._fail(impl.plugin, f"its {name}() raised {describe_exception(exc)}",
                           traceback.format_exc())

    def _fail(self, plugin: Any, reason: str, trace: str) -> None:
        with self._lock:  # actions arrive from several threads: warn once
            if id(plugin) in self._failed:
                return
            self._failed.add(id(plugin))
        if self._pm.is_registered(plugin):
            self._pm.fail(plugin, reason, trace, in_run=True)
