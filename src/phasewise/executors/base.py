"""BaseExecutor: the boring parts of an executor, for a plugin (and the built-ins) to
inherit. Optional: any object that meets ``phasewise.executors.Executor`` will do.

    submit(task, emit) ── closed? RuntimeError ──▶ start(task, emit) -> Future
    shutdown(cancel)   ── first call, or the first with cancel=True ──▶ close(cancel)
    with executor: ...    shutdown() on the way out (cancel=True if the block raised)

A subclass writes ``start`` and, if it holds anything, ``close``, and sets the protocol's
attributes where their defaults do not fit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from phasewise.core.task import Task

__all__ = ["IN_FLIGHT_PER_WORKER", "BaseExecutor"]

IN_FLIGHT_PER_WORKER = 5
"""What the built-in pools take at once per worker (their ``max_in_flight`` is this times
``max_workers``): tasks waiting in their own queue keep every worker busy between two of
the run's steps, and let the process pool send quick tasks in batches."""

_shutdown_lock = threading.Lock()  # guards the closed / cancel flags of every executor
_E = TypeVar("_E", bound="BaseExecutor")


class BaseExecutor:
    """An executor's boring parts: the protocol's attributes with their defaults, a
    ``submit`` that refuses after shutdown, an idempotent ``shutdown``, and a context
    manager. Subclasses implement ``start`` and may override ``close``."""

    crosses_processes: bool = False
    """See ``Executor.crosses_processes``: False, tasks run in this process."""

    reports_start: bool = False
    """See ``Executor.reports_start``: False, a task starts when it is submitted."""

    max_in_flight: int | None = None
    """See ``Executor.max_in_flight``: None, as many tasks at once as ``max_workers``."""

    closed: bool = False
    """True once ``shutdown`` has been called; ``submit`` then raises ``RuntimeError``."""

    _closed_with_cancel = False

    def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        """``start(task, emit)``, unless the executor is shut down (``RuntimeError``)."""
        if self.closed:
            self.check_open()
        return self.start(task, emit)

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        """Begin ``task`` (or queue it) and return its future: the protocol's ``submit``,
        less the check that the executor is open."""
        raise NotImplementedError(f"{type(self).__name__} must implement start(task, emit)")

    def check_open(self) -> None:
        """Raise ``RuntimeError`` if the executor is shut down. ``submit`` calls it; call
        it again where a ``shutdown`` from another thread could have come in between."""
        if self.closed:
            raise RuntimeError(f"cannot submit to {type(self).__name__} after shutdown")

    def shutdown(self, cancel: bool = False) -> None:
        """Mark the executor closed and ``close(cancel)`` it. Safe to call again: a later
        call does nothing, except that the first with ``cancel=True`` after calls without
        it calls ``close(cancel=True)``, to stop what still runs."""
        with _shutdown_lock:
            if self.closed and (self._closed_with_cancel or not cancel):
                return
            self.closed = True
            self._closed_with_cancel = cancel
        self.close(cancel)

    def close(self, cancel: bool) -> None:
        """Release workers and connections (``shutdown`` calls it). ``cancel``: stop the
        tasks that still run, where possible, and do not wait for them; otherwise let
        them finish. Called once, or twice if a ``shutdown(cancel=True)`` follows a
        ``shutdown()``. Does nothing here."""

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown(cancel=exc_type is not None)
