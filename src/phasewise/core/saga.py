"""Saga effects and the runner that interprets them.

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

The runner lives in the caller's thread and starts no thread of its own:

    caller thread                              executor threads / processes
    ─────────────                              ────────────────────────────
    step sagas until each waits  ──submit──▶  run task
    block on inbox (or next timer) ◀─put──── future done callback
    resume the saga that waited                emit(event) ──▶ store.dispatch (live)

Ctrl-C (KeyboardInterrupt) arrives in the caller's thread while it blocks; the runner
then cancels the root saga — ``SagaCancelled`` is thrown in at its current ``yield`` —
lets it clean up, and re-raises KeyboardInterrupt. A second Ctrl-C during that
clean-up stops it at once.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import CancelledError, Future
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import msgspec

from phasewise.core.actions import Action
from phasewise.core.errors import PhaseTimeout, PhasewiseError
from phasewise.core.wire import Started

if TYPE_CHECKING:
    from phasewise.core.executor import Executor
    from phasewise.core.store import Store
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
    "SagaRunner",
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


# ── runner ──────────────────────────────────────────────────────────────────


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


class SagaError(PhasewiseError):
    """A saga yielded something the runner does not understand."""


class Channel:
    """An unbounded queue between sagas of one runner (see ``Take`` and ``Send``)."""

    __slots__ = ("items", "takers")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.takers: deque[SagaTask] = deque()


class _Broken:
    """Inbox item: dispatching an executed task's events raised ``error``."""

    __slots__ = ("box", "error")

    def __init__(self, box: list[Future[Any]], error: BaseException) -> None:
        self.box, self.error = box, error


class _StartedMark:
    """Inbox item: an executed task has started (its timeout clock starts now)."""

    __slots__ = ("box", "phase", "seconds")

    def __init__(self, box: list[Future[Any]], seconds: float, phase: str) -> None:
        self.box, self.seconds, self.phase = box, seconds, phase


class _AllWait:
    __slots__ = ("children",)

    def __init__(self, children: list[SagaTask]) -> None:
        self.children = children


_PENDING = object()
_SUSPEND = object()


class SagaTask:
    """Handle of a running saga: ``done``, then ``result`` or ``error``."""

    __slots__ = ("_live", "_wait", "error", "gen", "joiners", "result")

    def __init__(self, gen: Generator[Any, Any, Any]) -> None:
        self.gen = gen
        self.result: Any = _PENDING
        self.error: BaseException | None = None
        self.joiners: list[Callable[[SagaTask], None]] = []
        self._wait: Any = None  # what the saga waits on: a Future, a timer entry, ...
        self._live: list[bool] = [False]  # the running Execute still forwards events

    @property
    def done(self) -> bool:
        return self.result is not _PENDING or self.error is not None


def _as_generator(saga: Any, args: tuple[Any, ...] = ()) -> Generator[Any, Any, Any]:
    if type(saga) is GeneratorType or isinstance(saga, Generator):
        return saga
    if callable(saga):
        gen = saga(*args)
        if type(gen) is GeneratorType or isinstance(gen, Generator):
            return gen
    raise SagaError(f"expected a saga (generator function or generator), got {saga!r}")


def _one_effect(effect: Any) -> Generator[Any, Any, Any]:
    return (yield effect)


class SagaRunner:
    """Runs one root saga to completion against a Store (see module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ready: deque[tuple[SagaTask, Any, BaseException | None]] = deque()
        self._inbox: queue.SimpleQueue[tuple[SagaTask, Any]] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, SagaTask, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._tasks: set[SagaTask] = set()
        self._pending = 0  # futures submitted and not yet seen done
        self._executors: dict[Executor, None] = {}  # every executor submitted to, in order
        self._handlers: dict[type, Callable[[SagaTask, Any], Any]] = {
            Put: self._put,
            Select: self._select,
            Call: self._call,
            Fork: self._fork,
            Join: self._join,
            Cancel: self._cancel,
            All: self._all,
            Delay: self._delay,
            Take: self._take,
            Send: self._send,
            Execute: self._execute,
        }

    # the loop

    def run(self, saga: Any) -> Any:
        root = self._spawn(_as_generator(saga))
        try:
            try:
                self._loop(root)
            except KeyboardInterrupt:
                self._cancel_task(root)
                try:
                    self._loop(root)  # let the sagas clean up
                except KeyboardInterrupt:  # a second Ctrl-C: stop every executor now
                    for executor in self._executors:
                        executor.shutdown(cancel=True)
                raise
        finally:
            # Whatever is left runs its ``finally`` blocks now, while the interpreter
            # is whole, rather than whenever the generators are collected.
            for task in list(self._tasks):
                try:
                    task.gen.close()
                except Exception:  # a saga that will not close must not hide the error
                    pass
        if root.error is not None:
            raise root.error
        return root.result

    def _loop(self, root: SagaTask) -> None:
        ready, inbox = self._ready, self._inbox
        while not root.done:
            while ready:
                task, value, exc = ready.popleft()
                if not task.done:
                    self._step(task, value, exc)
                if root.done:
                    return
            timeout = self._fire_timers()
            if ready:
                continue
            if timeout is None and not self._pending:
                raise SagaError("saga deadlock: every saga waits and nothing can wake one")
            try:
                # bounded so Ctrl-C is seen promptly even where a blocking get is not
                # interruptible
                task, fut = inbox.get(timeout=min(timeout, 0.5) if timeout is not None else 0.5)
            except queue.Empty:
                continue
            self._arrived(task, fut)
            while True:  # drain whatever else has arrived, without blocking
                try:
                    task, fut = inbox.get_nowait()
                except queue.Empty:
                    break
                self._arrived(task, fut)

    def _fire_timers(self) -> float | None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, task, fire = heapq.heappop(timers)
            if not task.done:
                fire()
        return (timers[0][0] - now) if timers else None

    def _step(self, task: SagaTask, value: Any, exc: BaseException | None) -> None:
        gen, handlers = task.gen, self._handlers
        task._wait = None
        while True:
            try:
                effect = gen.send(value) if exc is None else gen.throw(exc)
            except StopIteration as stop:
                self._finish(task, stop.value, None)
                return
            except BaseException as error:
                self._finish(task, None, error)
                return
            value, exc = None, None
            handler = handlers.get(type(effect))
            try:
                if handler is not None:
                    value = handler(task, effect)
                elif isinstance(effect, Generator):
                    value = self._join(task, Join(self._spawn(effect)))
                else:
                    raise SagaError(f"a saga yielded {effect!r}, which is not an effect")
            except BaseException as error:
                exc = error
            if value is _SUSPEND:
                return

    def _spawn(self, gen: Generator[Any, Any, Any]) -> SagaTask:
        task = SagaTask(gen)
        self._tasks.add(task)
        self._ready.append((task, None, None))
        return task

    def _finish(self, task: SagaTask, result: Any, error: BaseException | None) -> None:
        task.result, task.error = (None, error) if error is not None else (result, None)
        self._tasks.discard(task)
        joiners, task.joiners = task.joiners, []
        for wake in joiners:
            wake(task)

    def _resume(self, task: SagaTask, value: Any = None, exc: BaseException | None = None) -> None:
        self._ready.append((task, value, exc))

    def _add_timer(self, task: SagaTask, seconds: float, fire: Callable[[], None]) -> list[Any]:
        entry = [time.monotonic() + max(0.0, seconds), next(self._seq), task, fire]
        heapq.heappush(self._timers, entry)  # type: ignore[arg-type]
        return entry

    def _cancel_task(self, task: SagaTask) -> None:
        if task.done:
            return
        wait, task._wait = task._wait, None
        if isinstance(wait, Future):
            task._live[0] = False
            wait.cancel()
        elif isinstance(wait, list):  # a timer entry: make it a no-op
            wait[3] = lambda: None
        elif isinstance(wait, _AllWait):
            for child in wait.children:
                self._cancel_task(child)
        elif isinstance(wait, Channel):
            wait.takers = deque(t for t in wait.takers if t is not task)
        # joiners registered on other tasks check ``_wait`` before waking this one
        self._ready.appendleft((task, None, SagaCancelled()))

    # effect handlers: return a value to resume at once, or _SUSPEND

    def _put(self, task: SagaTask, effect: Put) -> Any:
        self._store.dispatch(effect.action)

    def _select(self, task: SagaTask, effect: Select) -> Any:
        state = self._store.state
        return state if effect.selector is None else effect.selector(state)

    def _call(self, task: SagaTask, effect: Call) -> Any:
        result = effect.fn(*effect.args, **effect.kwargs)
        if isinstance(result, Generator):
            return self._join(task, Join(self._spawn(result)))
        return result

    def _fork(self, task: SagaTask, effect: Fork) -> Any:
        return self._spawn(_as_generator(effect.saga, effect.args))

    def _join(self, task: SagaTask, effect: Join) -> Any:
        child = effect.task
        if child.done:
            if child.error is not None:
                raise child.error
            return child.result
        token = object()
        task._wait = token

        def wake(done: SagaTask) -> None:
            if task._wait is token:
                self._resume(task, done.result, done.error)

        child.joiners.append(wake)
        return _SUSPEND

    def _cancel(self, task: SagaTask, effect: Cancel) -> Any:
        target = effect.task
        if target.done:
            return False
        if effect.unstarted_only:
            wait = target._wait
            # Future.cancel itself, not an executor's override that stops a running task
            if not isinstance(wait, Future) or not Future.cancel(wait):
                return False
        self._cancel_task(target)
        return True

    def _all(self, task: SagaTask, effect: All) -> Any:
        children = [
            self._spawn(s if isinstance(s, Generator) else _one_effect(s))
            if isinstance(s, Generator) or type(s) in self._handlers
            else self._spawn(_as_generator(s))
            for s in effect.sagas
        ]
        if not children:
            return []
        token = _AllWait(children)
        task._wait = token
        remaining = [len(children)]

        def wake(done: SagaTask) -> None:
            if task._wait is not token:
                return
            if done.error is not None:
                task._wait = None
                for other in children:
                    self._cancel_task(other)
                self._resume(task, None, done.error)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                self._resume(task, [c.result for c in children])

        for child in children:
            child.joiners.append(wake)
        return _SUSPEND

    def _delay(self, task: SagaTask, effect: Delay) -> Any:
        task._wait = self._add_timer(task, effect.seconds, lambda: self._resume(task))
        return _SUSPEND

    def _take(self, task: SagaTask, effect: Take) -> Any:
        channel = effect.channel
        if channel.items:
            return channel.items.popleft()
        channel.takers.append(task)
        task._wait = channel
        return _SUSPEND

    def _send(self, task: SagaTask, effect: Send) -> Any:
        channel = effect.channel
        while channel.takers:
            taker = channel.takers.popleft()
            if taker._wait is channel:
                taker._wait = None
                self._resume(taker, effect.item)
                return None
        channel.items.append(effect.item)
        return None

    def _execute(self, task: SagaTask, effect: Execute) -> Any:
        to_actions, dispatch, inbox = effect.to_actions, self._store.dispatch, self._inbox
        live = [True]  # cleared when the runner gives up on this task (timeout, cancel)
        box: list[Future[Any]] = []  # the future, once submit has returned it
        seconds, phase = effect.task.timeout, effect.task.phase

        broken: list[BaseException] = []

        def emit(event: Any) -> None:
            if not live[0]:
                return
            try:
                if to_actions is not None:
                    for action in to_actions(event):
                        dispatch(action)
            except BaseException as exc:  # a listener or reducer broke: not the task's fault
                live[0] = False
                broken.append(exc)
                inbox.put((task, _Broken(box, exc)))
                return
            if seconds is not None and type(event) is Started:  # the timeout counts from here
                inbox.put((task, _StartedMark(box, seconds, phase)))

        executor = effect.executor
        self._executors[executor] = None
        queues = getattr(executor, "reports_start", False)
        if not queues:
            emit(Started(time.monotonic()))  # it starts now, as far as we can tell
            if broken:
                raise EmitFailed(broken[0])
        fut: Future[Any] = executor.submit(effect.task, emit)
        box.append(fut)
        if broken:
            fut.cancel()
            raise EmitFailed(broken[0])
        if not queues and fut.done():  # finished inside submit (inline): no round trip
            return fut.result()  # raises the task's error
        task._wait, task._live = fut, live
        self._pending += 1
        fut.add_done_callback(lambda f: inbox.put((task, f)))
        return _SUSPEND

    def _start_timeout(self, task: SagaTask, fut: Future[Any], seconds: float, phase: str) -> None:
        live = task._live

        def expire() -> None:
            if task._wait is fut:
                task._wait, live[0] = None, False
                fut.cancel()
                error = PhaseTimeout(f"phase {phase!r} timed out after {seconds:g} s", phase)
                self._resume(task, None, error)

        self._add_timer(task, seconds, expire)

    def _arrived(self, task: SagaTask, item: Future[Any] | _StartedMark) -> None:
        if type(item) is _StartedMark:
            fut = item.box[0] if item.box else None
            if fut is not None and task._wait is fut:
                self._start_timeout(task, fut, item.seconds, item.phase)
            return
        if type(item) is _Broken:
            fut = item.box[0] if item.box else None
            if fut is not None and task._wait is fut:
                task._wait = None
                fut.cancel()
                self._resume(task, None, EmitFailed(item.error))
            return
        self._future_done(task, item)  # type: ignore[arg-type]

    def _future_done(self, task: SagaTask, fut: Future[Any]) -> None:
        self._pending -= 1
        if task._wait is not fut:
            return  # timed out or cancelled already
        task._wait = None
        try:
            self._resume(task, fut.result())
        except CancelledError:
            self._resume(task, None, SagaCancelled())
        except BaseException as exc:  # the task's error goes to its saga
            self._resume(task, None, exc)

