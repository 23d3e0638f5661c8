"""Saga effects: what a saga yields, and the handles it gets back.

A saga is a generator that yields effects and receives their results::

    def saga():
        yield Put(Action("@@HELLO"))           # dispatch to the Store
        state = yield Select()                 # read the Store's state
        n = yield Call(len, args=("abc",))     # call a function
        yield Delay(0.1)                       # sleep without blocking other sagas
        child = yield Fork(other_saga)         # start a saga alongside, get its handle
        value = yield Join(child)              # wait for it, get its return value
        a, b = yield All(sagas=(s1(), s2()))   # run several at once, wait for all
        result = yield Execute(task, executor) # hand a phase to an executor

``phasewise.core.runner.SagaRunner`` interprets them (``Store.run_saga`` uses it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from phasewise.core.actions import Action
from phasewise.core.errors import SagaError

if TYPE_CHECKING:
    from phasewise.core.executor import Executor
    from phasewise.core.task import Task

__all__ = [
    "All",
    "Call",
    "Cancel",
    "Channel",
    "Delay",
    "EmitFailed",
    "Execute",
    "Fork",
    "Join",
    "Put",
    "SagaCancelled",
    "SagaError",
    "SagaTask",
    "Select",
    "Send",
    "Take",
]


# ── effects ─────────────────────────────────────────────────────────────────
# Frozen msgspec Structs: a run builds several per phase, and a Struct is several times
# cheaper to build than a frozen dataclass.


class Put(msgspec.Struct, frozen=True):
    """Dispatch ``action`` to the Store; resumes with None."""

    action: Action


class Call(msgspec.Struct, frozen=True):
    """Call ``fn(*args, **kwargs)`` in the runner's thread; resumes with its return value."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)


class Select(msgspec.Struct, frozen=True):
    """Resume with ``selector(state)``, or the state itself when no selector is given."""

    selector: Callable[[Any], Any] | None = None


class Fork(msgspec.Struct, frozen=True):
    """Start ``saga(*args)`` (a generator function, or a generator) alongside; resumes with
    its ``SagaTask`` handle at once."""

    saga: Callable[..., Generator[Any, Any, Any]] | Generator[Any, Any, Any]
    args: tuple[Any, ...] = ()


class Join(msgspec.Struct, frozen=True):
    """Wait for a forked saga; resumes with its return value or raises its exception."""

    task: SagaTask


class Cancel(msgspec.Struct, frozen=True):
    """Cancel a forked saga: ``SagaCancelled`` is thrown in at its current ``yield``.

    With ``unstarted_only``, only if the saga waits on an ``Execute`` whose task has not
    started (it waits in the executor's queue, its future still pending): the task is
    withdrawn. Resumes with whether the saga was cancelled."""

    task: SagaTask
    unstarted_only: bool = False


class All(msgspec.Struct, frozen=True):
    """Run every saga or effect in ``sagas`` at once; resumes with their results in order.

    If one raises, the others are cancelled and the exception is raised here."""

    sagas: tuple[Any, ...] = ()


class Delay(msgspec.Struct, frozen=True):
    """Sleep ``seconds`` without holding up other sagas."""

    seconds: float


class Take(msgspec.Struct, frozen=True):
    """Wait for the next item sent to ``channel``; resumes with it."""

    channel: Channel


class Send(msgspec.Struct, frozen=True):
    """Put ``item`` on ``channel`` (never blocks); resumes with None."""

    channel: Channel
    item: Any


class Execute(msgspec.Struct, frozen=True):
    """Run ``task`` on ``executor``; resumes with the task's result or raises its error.

    ``to_actions(event)`` turns each event the executor emits while the task runs
    (``wire.Started``, ``wire.Log`` batches, …) into actions the runner dispatches at
    once, from whichever thread emitted them. An executor that queues tasks emits
    ``Started`` when the task begins (``reports_start = True``); for any other the
    runner emits it at submit. ``task.timeout`` seconds after the start, the runner
    cancels the future (executors that can, kill the worker) and raises ``PhaseTimeout``.
    """

    task: Task
    executor: Executor
    to_actions: Callable[[Any], Iterable[Action]] | None = None


# ── what effects return and throw ───────────────────────────────────────────


class SagaCancelled(BaseException):
    """Thrown into a saga that is cancelled. A BaseException so ``except Exception``
    in a saga does not swallow it."""


class EmitFailed(BaseException):
    """Thrown into a saga whose Execute's events could not be dispatched (a listener or
    the reducer raised ``error``). A BaseException so that it is not mistaken for the
    task's own failure."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class Channel:
    """An unbounded queue between sagas of one runner (see ``Take`` and ``Send``)."""

    __slots__ = ("items", "takers")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.takers: deque[SagaTask] = deque()


PENDING = object()
"""``SagaTask.result`` while the saga runs."""


class SagaTask:
    """Handle of a running saga (what ``Fork`` resumes with): ``done``, then ``result``
    or ``error``. The runner keeps what the saga waits on in ``waiting_on``."""

    __slots__ = ("error", "gen", "joiners", "result", "waiting_on")

    def __init__(self, gen: Generator[Any, Any, Any]) -> None:
        self.gen = gen
        self.result: Any = PENDING
        self.error: BaseException | None = None
        self.joiners: list[Callable[[SagaTask], None]] = []
        self.waiting_on: Any = None  # a submission, a timer, a channel, an All, a join token

    @property
    def done(self) -> bool:
        return self.result is not PENDING or self.error is not None
