"""SagaRunner: interprets the effects of ``phasewise.core.saga`` in the caller's thread.

It is given the Store's ``dispatch`` and a way to read the state, not the Store, and
starts no thread of its own::

    caller thread                              executor threads / processes
    ─────────────                              ────────────────────────────
    step sagas until each waits  ──submit──▶  run task
    block on inbox (or next timer) ◀─put──── future done callback
    resume the saga that waited                emit(event) ──▶ dispatch (live)

Ctrl-C (KeyboardInterrupt) arrives in the caller's thread while it blocks; the runner
then cancels the root saga — ``SagaCancelled`` is thrown in at its current ``yield`` —
lets it clean up, and re-raises KeyboardInterrupt. A second Ctrl-C during that
clean-up stops every executor at once.

The module runs past 400 lines on purpose: every effect handler reads and writes the
same ready queue, inbox and timers, and split across files that one state machine would
be harder, not easier, to follow.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import CancelledError, Future
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from phasewise.core.errors import PhaseError, PhaseTimeout, PhasewiseError, SagaError
from phasewise.core.saga import (
    All,
    Call,
    Cancel,
    Channel,
    Delay,
    EmitFailed,
    Execute,
    Fork,
    Join,
    Put,
    SagaCancelled,
    SagaTask,
    Select,
    Send,
    Take,
)
from phasewise.core.wire import Started

if TYPE_CHECKING:
    from phasewise.core.actions import Action
    from phasewise.core.executor import Executor

__all__ = ["SagaRunner"]

_SUSPEND = object()  # an effect handler's answer: the saga waits; something resumes it later
_INTERRUPTED = object()  # what a saga waits on when Ctrl-C came while its effect ran


def _raised(exc: BaseException) -> str:
    message = str(exc)
    return f"raised {type(exc).__name__}" + (f": {message}" if message else "")


def _broken_submit(executor: Any, phase: str, what: str) -> PhaseError:
    """The phase's error when its executor's ``submit`` raised or returned no Future: it
    names the plugin the executor came from (``phasewise_plugin``, which the registry
    sets on executors it makes), else the executor's class."""
    cls = type(executor)
    origin = getattr(executor, "phasewise_plugin", None)
    who = (f"{cls.__qualname__} from {origin}" if isinstance(origin, str)
           else f"{cls.__module__}.{cls.__qualname__}")
    return PhaseError(f"executor {who}: submit() {what}", phase)


class _Submission:
    """One Execute's task on its executor: the future once submit has returned it, and
    whether the task's events still reach the Store (not after a timeout or cancel)."""

    __slots__ = ("future", "live")

    def __init__(self) -> None:
        self.future: Future[Any] | None = None
        self.live = True


class _Broken:
    """Inbox item: dispatching a submission's events raised ``error``."""

    __slots__ = ("error", "submission")

    def __init__(self, submission: _Submission, error: BaseException) -> None:
        self.submission, self.error = submission, error


class _Begun:
    """Inbox item: a submitted task has started; its timeout of ``seconds`` counts now."""

    __slots__ = ("phase", "seconds", "submission")

    def __init__(self, submission: _Submission, seconds: float, phase: str) -> None:
        self.submission, self.seconds, self.phase = submission, seconds, phase


class _Timer:
    """A heap entry: call ``fire`` at ``deadline`` unless cancelled first."""

    __slots__ = ("cancelled", "deadline", "fire", "seq", "task")

    def __init__(self, deadline: float, seq: int, task: SagaTask,
                 fire: Callable[[], None]) -> None:
        self.deadline, self.seq, self.task, self.fire = deadline, seq, task, fire
        self.cancelled = False

    def __lt__(self, other: _Timer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class _AllWait:
    """What a saga waiting on ``All`` waits on: its children, and how many still run."""

    __slots__ = ("children", "remaining")

    def __init__(self, children: list[SagaTask]) -> None:
        self.children = children
        self.remaining = len(children)


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
    """Runs one root saga to completion (see the module docstring).

    ``dispatch(action)`` reduces an action (``Put``, and the events of an ``Execute``,
    from any thread); ``get_state()`` answers ``Select``.
    """

    def __init__(self, dispatch: Callable[[Action], None], get_state: Callable[[], Any]) -> None:
        self._dispatch = dispatch
        self._get_state = get_state
        self._ready: deque[tuple[SagaTask, Any, BaseException | None]] = deque()
        self._inbox: queue.SimpleQueue[tuple[SagaTask, Any]] = queue.SimpleQueue()
        self._timers: list[_Timer] = []
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
                task, item = inbox.get(timeout=min(timeout, 0.5) if timeout is not None else 0.5)
            except queue.Empty:
                continue
            self._arrived(task, item)
            while True:  # drain whatever else has arrived, without blocking
                try:
                    task, item = inbox.get_nowait()
                except queue.Empty:
                    break
                self._arrived(task, item)

    def _fire_timers(self) -> float | None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0].deadline <= now:
            timer = heapq.heappop(timers)
            if not timer.cancelled and not timer.task.done:
                timer.fire()
        return (timers[0].deadline - now) if timers else None

    def _step(self, task: SagaTask, value: Any, exc: BaseException | None) -> None:
        gen, handlers = task.gen, self._handlers
        task.waiting_on = None
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
            except KeyboardInterrupt:
                # Ctrl-C while an effect ran in this thread (an inline phase's handler):
                # as if it had come while the runner waited on the effect, so that when
                # ``run`` cancels the sagas this one is thrown SagaCancelled there
                task.waiting_on = _INTERRUPTED
                raise
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

    def _add_timer(self, task: SagaTask, seconds: float, fire: Callable[[], None]) -> _Timer:
        timer = _Timer(time.monotonic() + max(0.0, seconds), next(self._seq), task, fire)
        heapq.heappush(self._timers, timer)
        return timer

    def _cancel_task(self, task: SagaTask) -> None:
        if task.done:
            return
        waiting_on, task.waiting_on = task.waiting_on, None
        if isinstance(waiting_on, _Submission):
            waiting_on.live = False
            if waiting_on.future is not None:
                waiting_on.future.cancel()
        elif isinstance(waiting_on, _Timer):
            waiting_on.cancelled = True
        elif isinstance(waiting_on, _AllWait):
            for child in waiting_on.children:
                self._cancel_task(child)
        elif isinstance(waiting_on, Channel):
            waiting_on.takers = deque(t for t in waiting_on.takers if t is not task)
        # joiners registered on other tasks check ``waiting_on`` before waking this one
        self._ready.appendleft((task, None, SagaCancelled()))

    # effect handlers: return a value to resume at once, or _SUSPEND

    def _put(self, task: SagaTask, effect: Put) -> Any:
        self._dispatch(effect.action)

    def _select(self, task: SagaTask, effect: Select) -> Any:
        state = self._get_state()
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
        task.waiting_on = token

        def wake(done: SagaTask) -> None:
            if task.waiting_on is token:
                self._resume(task, done.result, done.error)

        child.joiners.append(wake)
        return _SUSPEND

    def _cancel(self, task: SagaTask, effect: Cancel) -> Any:
        target = effect.task
        if target.done:
            return False
        if effect.unstarted_only:
            waiting_on = target.waiting_on
            future = waiting_on.future if isinstance(waiting_on, _Submission) else None
            # Future.cancel itself, not an executor's override that stops a running task
            if future is None or not Future.cancel(future):
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
        waiting = _AllWait(children)
        task.waiting_on = waiting

        def wake(done: SagaTask) -> None:
            if task.waiting_on is not waiting:
                return
            if done.error is not None:
                task.waiting_on = None
                for other in children:
                    self._cancel_task(other)
                self._resume(task, None, done.error)
                return
            waiting.remaining -= 1
            if waiting.remaining == 0:
                self._resume(task, [c.result for c in children])

        for child in children:
            child.joiners.append(wake)
        return _SUSPEND

    def _delay(self, task: SagaTask, effect: Delay) -> Any:
        task.waiting_on = self._add_timer(task, effect.seconds, lambda: self._resume(task))
        return _SUSPEND

    def _take(self, task: SagaTask, effect: Take) -> Any:
        channel = effect.channel
        if channel.items:
            return channel.items.popleft()
        channel.takers.append(task)
        task.waiting_on = channel
        return _SUSPEND

    def _send(self, task: SagaTask, effect: Send) -> Any:
        channel = effect.channel
        while channel.takers:
            taker = channel.takers.popleft()
            if taker.waiting_on is channel:
                taker.waiting_on = None
                self._resume(taker, effect.item)
                return None
        channel.items.append(effect.item)
        return None

    # Execute: a task on an executor, its events dispatched live, its timeout kept here

    def _execute(self, task: SagaTask, effect: Execute) -> Any:
        to_actions, dispatch, inbox = effect.to_actions, self._dispatch, self._inbox
        submission = _Submission()
        seconds, phase = effect.task.timeout, effect.task.phase
        broken: list[BaseException] = []  # what emit saw fail before submit returned

        def emit(event: Any) -> None:
            if not submission.live:
                return
            try:
                if to_actions is not None:
                    for action in to_actions(event):
                        dispatch(action)
            except BaseException as exc:  # a listener or reducer broke: not the task's fault
                submission.live = False
                broken.append(exc)
                inbox.put((task, _Broken(submission, exc)))
                return
            if seconds is not None and type(event) is Started:  # the timeout counts from here
                inbox.put((task, _Begun(submission, seconds, phase)))

        executor = effect.executor
        self._executors[executor] = None
        queues = getattr(executor, "reports_start", False)
        if not queues:
            emit(Started(time.monotonic()))  # it starts now, as far as we can tell
            if broken:
                raise EmitFailed(broken[0])
        try:
            future: Future[Any] = executor.submit(effect.task, emit)
        except PhasewiseError:
            raise  # the executor's own account (an ExecutorError stops the run)
        except Exception as exc:  # a broken executor fails this phase, naming its plugin
            raise _broken_submit(executor, phase, _raised(exc)) from exc
        if not isinstance(future, Future):
            raise _broken_submit(executor, phase, f"returned {type(future).__name__}, not a "
                                 f"concurrent.futures.Future")
        submission.future = future
        if broken:
            future.cancel()
            raise EmitFailed(broken[0])
        if not queues and future.done():  # finished inside submit (inline): no round trip
            return future.result()  # raises the task's error
        task.waiting_on = submission
        self._pending += 1
        future.add_done_callback(lambda f: inbox.put((task, f)))
        return _SUSPEND

    def _start_timeout(self, task: SagaTask, submission: _Submission, seconds: float,
                       phase: str) -> None:
        def expire() -> None:
            if task.waiting_on is submission:
                task.waiting_on, submission.live = None, False
                if submission.future is not None:
                    submission.future.cancel()
                error = PhaseTimeout(f"phase {phase!r} timed out after {seconds:g} s", phase)
                self._resume(task, None, error)

        self._add_timer(task, seconds, expire)

    def _arrived(self, task: SagaTask, item: Future[Any] | _Begun | _Broken) -> None:
        if type(item) is _Begun:
            if task.waiting_on is item.submission:
                self._start_timeout(task, item.submission, item.seconds, item.phase)
            return
        if type(item) is _Broken:
            if task.waiting_on is item.submission:
                task.waiting_on = None
                if item.submission.future is not None:
                    item.submission.future.cancel()
                self._resume(task, None, EmitFailed(item.error))
            return
        self._future_done(task, item)  # type: ignore[arg-type]

    def _future_done(self, task: SagaTask, future: Future[Any]) -> None:
        self._pending -= 1
        waiting_on = task.waiting_on
        if not isinstance(waiting_on, _Submission) or waiting_on.future is not future:
            return  # timed out or cancelled already
        task.waiting_on = None
        try:
            self._resume(task, future.result())
        except CancelledError:
            self._resume(task, None, SagaCancelled())
        except BaseException as exc:  # the task's error goes to its saga
            self._resume(task, None, exc)
