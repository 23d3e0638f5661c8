"""The executor protocol, and the per-run set of executors a pipeline uses.

An executor runs tasks somewhere — this thread, a thread pool, a process, a cluster —
and is as small as an httpx transport::

    future = executor.submit(task, emit)   # emit(event) from any thread while it runs
    executor.shutdown(cancel=False)

plus three attributes that tell the run how to treat it (``crosses_processes``,
``reports_start``, ``max_in_flight``). ``phasewise.executors`` exports this protocol
and what an executor is written with: ``BaseExecutor`` (the attributes' defaults and the
boring parts), ``CancellableFuture``, ``run_payload`` / ``reply_value`` for the two
sides of a process boundary, and the remote-error convention, ``RemotePhaseError``.

The future resolves to the handler's return value, or raises what stands for its
failure. An executor that keeps results where they were made (a cluster) may resolve it
to a ``phasewise.core.task.Remote`` instead: the run then passes that on to the phases
that depend on it on the same executor, and fetches the value for anything else. A
future raising ``phasewise.core.errors.RemotePhaseError`` (the handler raised in another
process) shows the phase's error as ``Type: message`` and the remote
traceback it carries as the phase's traceback; any other exception shows as
``Type: message`` with its own traceback from the handler's frame down.
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
    """What phasewise needs from an executor plugin: two methods, three attributes.

    An executor written before the attributes were declared, without them, is run as if
    it had their defaults (``BaseExecutor`` has them): False, False, None.
    """

    crosses_processes: bool
    """True if tasks run in another process, so that handlers and contexts are pickled
    (the executor sends ``Task.payload``). The run then pickles every handler bound for
    this executor before any phase starts; one that cannot be pickled fails its phase,
    with a message naming the phase and the object, and nothing runs."""

    reports_start: bool
    """True if the executor queues tasks and emits ``wire.Started`` itself when a queued
    task begins. Its futures must then stay pending (not running) until that moment:
    the run withdraws a queued task with ``Future.cancel()`` (a phase failed under the
    stop policy: phases still waiting in the queue end ``cancelled``, not started), which
    only a pending future allows. Until ``Started`` arrives the phase stays ``pending``
    and its timeout does not run.

    False: the task counts as started when ``submit`` is called; the run itself emits
    ``Started`` then, and times the phase from there, so the executor should not hold
    the task back (the run gives it no more than ``max_in_flight`` at once)."""

    max_in_flight: int | None
    """How many of the run's tasks the scheduler may hand this executor at once
    (submitted, future not yet done). None: ``max_workers``, the number its factory was
    given. More than ``max_workers`` only makes sense with ``reports_start``: the extra
    tasks wait in the executor's queue, pending, so that a worker finding the next task
    already there need not wait for the run (the process and thread pools take five
    times ``max_workers``). When a run uses several executors, the smallest limit holds."""

    def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        """Start ``task`` (or queue it, with ``reports_start``) and return its future at
        once; call ``emit(event)`` with ``wire`` events while it runs, from any thread.

        The future resolves to the handler's result or raises its error; raise from the
        future, not from ``submit``. Every event for a task must be emitted before its
        future resolves. ``future.cancel()`` on a running task should stop it where the
        executor can (``CancellableFuture``); the run ignores a cancelled future's
        outcome."""
        ...

    def shutdown(self, cancel: bool = False) -> None:
        """Release workers, once per run that created the executor; safe to call twice.
        ``cancel=True``: stop running tasks now, where possible, and do not wait."""
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
