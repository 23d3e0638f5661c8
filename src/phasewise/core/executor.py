"""The executor protocol, and the per-run set of executors a pipeline uses.

An executor runs tasks somewhere — this thread, a thread pool, a process, a cluster —
and is as small as an httpx transport::

    future = executor.submit(task, emit)   # emit(event) from any thread while it runs
    executor.shutdown(cancel=False)

``future`` is a ``concurrent.futures.Future`` resolving to the handler's result or
raising its error. Cancelling the future of a running task should stop the task if the
executor can (process executors kill the worker; a thread cannot be killed).

An executor that sends tasks to other processes sets ``crosses_processes = True``; a run
then checks that every handler bound for it can be pickled before any phase starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from phasewise.core.errors import ExecutorOptionsError

if TYPE_CHECKING:
    from concurrent.futures import Future

    from phasewise.core.task import Task

__all__ = ["Executor", "ExecutorFactory", "ExecutorLookup", "ExecutorSession"]


@runtime_checkable
class Executor(Protocol):
    """What phasewise needs from an executor plugin."""

    def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        """Start ``task``; call ``emit(event)`` with ``wire`` events while it runs.

        Every event for a task must be emitted before its future resolves."""
        ...

    def shutdown(self, cancel: bool = False) -> None:
        """Release workers. ``cancel=True``: stop running tasks now, where possible."""
        ...


ExecutorFactory = Callable[..., Executor]
"""``factory(max_workers=..., **options) -> Executor``, as a plugin registers it."""

ExecutorLookup = Callable[[str], ExecutorFactory]
"""Maps an executor name to its factory; raises ``UnknownExecutorError``."""


class ExecutorSession:
    """The executors of one run, started on first use and shut down together.

    ``options`` go to the run's own executor (``default``); an executor named only by a
    phase's ``executor=`` override is created with ``max_workers`` alone.
    """

    def __init__(
        self,
        lookup: ExecutorLookup,
        default: str,
        max_workers: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._lookup = lookup
        self.default = default
        self._max_workers = max_workers
        self._options = dict(options or {})
        self._started: dict[str, Executor] = {}

    def get(self, name: str | None = None) -> Executor:
        name = name or self.default
        executor = self._started.get(name)
        if executor is None:
            factory = self._lookup(name)
            options = self._options if name == self.default else {}
            try:
                executor = factory(max_workers=self._max_workers, **options)
            except (TypeError, ValueError) as exc:
                raise ExecutorOptionsError(name, dict(options), exc) from exc
            self._started[name] = executor
        return executor

    def shutdown(self, cancel: bool = False) -> None:
        started, self._started = self._started, {}
        errors: list[BaseException] = []
        for executor in started.values():
            try:
                executor.shutdown(cancel=cancel)
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
