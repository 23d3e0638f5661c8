"""PipelineRun: the saga that schedules a pipeline's phases onto executors.

Dataflow scheduling: a phase is ready the moment all its dependencies have completed
or been skipped. Ready phases start in execution order, subject to two limits:

* at most ``max_workers`` phases run at once (when every executor of the run queues
  tasks and reports when each starts, up to five times as many are handed over; the ones
  waiting in an executor's queue stay ``pending``);
* a ``parallel=False`` phase runs alone — it waits until nothing else runs, and nothing
  starts while it runs. A waiting exclusive phase also holds back phases after it, so it
  is never starved.

Each started phase is a forked saga (``_phase_saga``) that dispatches its own
START / RETRY / COMPLETE / FAILED / SKIPPED / CANCELLED actions and reports its outcome
on a channel the driver takes from.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.context import PhaseContext
from phasewise.core.errors import ExecutorError, PhaseError, RemotePhaseError
from phasewise.core.executor import ExecutorLookup, ExecutorSession
from phasewise.core.saga import (
    Cancel,
    Channel,
    Delay,
    EmitFailed,
    Execute,
    Fork,
    Put,
    SagaCancelled,
    SagaTask,
    Send,
    Take,
)
from phasewise.core.task import Task, handler_traceback, pickled_handler
from phasewise.core.wire import Log, Started

if TYPE_CHECKING:
    from phasewise.core.model import Phase, Pipeline

__all__ = ["PipelineRun", "describe_error"]

Saga = Generator[Any, Any, Any]


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(error, traceback)`` for a phase's failure: "Type: message" and the formatted
    traceback (the worker's own, for errors raised in another process)."""
    if isinstance(exc, RemotePhaseError):
        return str(exc), exc.remote_traceback
    if isinstance(exc, PhaseError):
        return str(exc), ""
    message = str(exc)
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return error, handler_traceback(exc)


_now = time.monotonic

QUEUED_IN_FLIGHT = 5
"""Phases in flight per worker when every executor of a run queues tasks (see saga())."""


def _wants_context(pipeline: Pipeline) -> dict[str, bool]:
    """Phase name -> whether its handler takes ``context`` (phases often share a handler)."""
    by_handler: dict[int, bool] = {}
    out = {}
    for p in pipeline.phases:
        key = id(p.handler)
        if key not in by_handler:
            by_handler[key] = p.wants_context
        out[p.name] = by_handler[key]
    return out


class _Plan:
    """What scheduling needs to know about a pipeline's graph, worked out once for it."""

    def __init__(self, pipeline: Pipeline) -> None:
        phases = pipeline.phases
        self.in_order = [pipeline.phase(name) for name in pipeline.execution_order()]
        self.order = {p.name: i for i, p in enumerate(self.in_order)}
        self.waiting = {p.name: len(set(p.depends_on)) for p in phases}
        self.dependants: dict[str, list[str]] = {p.name: [] for p in phases}
        for p in phases:
            for dep in set(p.depends_on):
                self.dependants[dep].append(p.name)
        self.ready = sorted(self.order[p.name] for p in phases if self.waiting[p.name] == 0)
        self._depends_on = {p.name: p.depends_on for p in phases}
        self._upstream: dict[str, frozenset[str]] = {}

    UPSTREAM_LIMIT = 256
    """Indirect dependencies worked out per phase at most (a context's error message
    uses them; a long chain must not cost O(N²))."""

    def upstream(self, name: str) -> frozenset[str]:
        """Some of ``name``'s indirect dependencies (all of them, up to UPSTREAM_LIMIT)."""
        found = self._upstream.get(name)
        if found is None:
            direct = set(self._depends_on[name])
            seen: set[str] = set()
            queue = [d for dep in direct for d in self._depends_on[dep]]
            while queue and len(seen) < self.UPSTREAM_LIMIT:
                dep = queue.pop()
                if dep not in seen and dep not in direct:
                    seen.add(dep)
                    queue.extend(self._depends_on[dep])
            found = self._upstream[name] = frozenset(seen)
        return found


class PipelineRun:
    """One run of a pipeline; ``saga()`` is what the Store runs."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        executor: str = "thread",
        max_workers: int | None = None,
        executor_options: Mapping[str, Any] | None = None,
        executors: ExecutorLookup | None = None,
        capture_output: bool = False,
        fail_fast: bool = False,
        results: dict[str, Any] | None = None,
    ) -> None:
        if executors is None:
            from phasewise.core.runtime import lookup_executor as executors
        self.pipeline = pipeline
        self.max_workers = max_workers or os.cpu_count() or 1
        self.session = ExecutorSession(executors, executor, self.max_workers, executor_options)
        self.in_flight = self.max_workers  # raised by saga() when executors queue tasks
        self.capture_output = capture_output
        self.fail_fast = fail_fast
        self.results = results if results is not None else {}
        self._wants_context: dict[str, bool] = pipeline._cached(
            "wants_context", lambda: _wants_context(pipeline))
        self._cancel_reason = ""
        self._crash: BaseException | None = None  # infrastructure error to re-raise
        self._broken: ExecutorError | None = None  # an executor that cannot run phases
        self._plan: _Plan = pipeline._cached("schedule", lambda: _Plan(pipeline))

    # the driver

    def saga(self) -> Saga:
        phases = self.pipeline.phases
        plan = self._plan
        in_order, order, dependants = plan.in_order, plan.order, plan.dependants
        waiting = dict(plan.waiting)  # counts down as dependencies complete
        ready = list(plan.ready)  # a heap of positions in the execution order

        done = Channel()
        running: dict[str, SagaTask] = {}
        started: set[str] = set()
        exclusive = False
        failed: str | None = None
        interrupted = False
        cancel_reason = ""
        ended_cleanly = False

        try:
            # Created before the run is announced: options an executor refuses, or an
            # executor that cannot work at all, raise before anything is reported.
            executors = [self.session.get(name) for name in {p.executor for p in phases}]
            yield Put(Action(A.PIPELINE_START, _now()))
            if all(getattr(executor, "reports_start", False) for executor in executors):
                # Executors that queue tasks run at most max_workers at once and say when
                # each begins; handing them more keeps their workers busy between two of
                # our steps, and lets both sides work in batches (the process pool queues
                # up to 4 quick tasks per worker). Those waiting in a queue stay ``pending``.
                self.in_flight = QUEUED_IN_FLIGHT * self.max_workers
            unsendable = self._unsendable_phase()
            if unsendable is not None:
                failed = unsendable[0]
                started.add(failed)
                yield Put(Action(A.PHASE_FAILED, {"name": failed, "error": unsendable[1],
                                                  "timestamp": _now()}))
            try:
                while True:
                    while ready and failed is None and not exclusive:
                        phase = in_order[ready[0]]
                        if not phase.parallel and running:
                            break  # an exclusive phase waits for the others to finish
                        if phase.parallel and len(running) >= self.in_flight:
                            break
                        heapq.heappop(ready)
                        started.add(phase.name)
                        exclusive = not phase.parallel
                        running[phase.name] = yield Fork(self._phase_saga(phase, done))
                    if not running:
                        break
                    name, outcome = yield Take(done)
                    del running[name]
                    exclusive = False
                    if outcome in ("completed", "skipped"):
                        for child in dependants[name]:
                            waiting[child] -= 1
                            if waiting[child] == 0:
                                heapq.heappush(ready, order[child])
                    elif outcome == "broken":  # its executor cannot run any phase
                        failed = failed or name
                        cancel_reason = f"cancelled: {self._broken}"
                        yield from self._cancel_all(running, done, cancel_reason)
                    elif outcome == "crashed":
                        yield from self._cancel_all(running, done, "cancelled: the run broke")
                        raise self._crash or RuntimeError(f"phase {name!r} crashed")
                    elif outcome == "failed" and failed is None:
                        failed = name
                        if self.fail_fast and running:
                            cancel_reason = f"cancelled: phase {name!r} failed (fail_fast)"
                            yield from self._cancel_all(running, done, cancel_reason)
                        else:  # running phases finish; those still queued do not start
                            self._cancel_reason = f"not started: phase {name!r} failed"
                            for task in list(running.values()):
                                yield Cancel(task, unstarted_only=True)
            except SagaCancelled:
                interrupted = True
                yield from self._cancel_all(running, done, "cancelled: interrupted")
            if interrupted:
                reason = "not started: the run was interrupted"
            elif failed is not None:
                reason = f"not started: phase {failed!r} failed"
            else:
                reason = "not started: a dependency did not complete"
            for p in phases:
                if p.name not in started:
                    yield Put(Action(A.PHASE_CANCELLED, {"name": p.name, "reason": reason,
                                                         "timestamp": _now()}))
            status = "cancelled" if interrupted else ("failed" if failed is not None else None)
            payload: dict[str, Any] = {"timestamp": _now()}
            if status is not None:
                payload["status"] = status
            yield Put(Action(A.PIPELINE_COMPLETE, payload))
            ended_cleanly = not (interrupted or cancel_reason)
        finally:
            # Not a yielded Call: this must also run when the generator is closed. A run
            # that did not end cleanly (Ctrl-C, fail_fast, an error) stops what still runs.
            self.session.shutdown(cancel=not ended_cleanly)
        if self._broken is not None:
            raise self._broken
        return self.results

    def _unsendable_phase(self) -> tuple[str, str] | None:
        """The first phase whose handler cannot be pickled for the executor it is bound
        for, with the reason; checked before any phase starts."""
        crossing = {name for name in {p.executor for p in self.pipeline.phases}
                    if getattr(self.session.get(name), "crosses_processes", False)}
        if not crossing:
            return None
        for phase in self.pipeline.phases:
            if phase.executor not in crossing:
                continue
            try:  # what the executor will send; kept, so it is pickled once
                pickled_handler(phase.handler)
            except Exception as exc:  # pickling raises many types
                return phase.name, (
                    f"phase {phase.name!r} cannot be sent to a worker: its handler "
                    f"{phase.handler!r} cannot be pickled: {type(exc).__name__}: {exc}"
                )
        return None

    def _cancel_all(self, running: dict[str, SagaTask], done: Channel, reason: str) -> Saga:
        self._cancel_reason = reason
        for task in list(running.values()):
            yield Cancel(task)
        while running:
            name, _ = yield Take(done)
            del running[name]

    # one phase

    def _phase_saga(self, phase: Phase, done: Channel) -> Saga:
        name, policy = phase.name, phase.policy
        outcome = "failed"
        try:
            context = self._context(phase)
            executor = self.session.get(phase.executor)  # started before the first phase
            attempt = 0
            while True:
                attempt += 1
                task = Task(name, phase.handler, context, attempt=attempt,
                            capture_output=self.capture_output, timeout=phase.timeout)
                try:
                    result = yield Execute(task, executor, self._event_actions(name, attempt))
                except SagaCancelled:
                    raise
                except ExecutorError as exc:  # not this phase's fault: no retry, the run stops
                    self._broken = self._broken or exc
                    yield Put(Action(A.PHASE_FAILED, {"name": name, "error": str(exc),
                                                      "timestamp": _now()}))
                    outcome = "broken"
                    break
                except Exception as exc:
                    error, tb = describe_error(exc)
                    if attempt < policy.attempts:
                        yield Put(Action(A.PHASE_RETRY, {
                            "name": name, "attempt": attempt + 1, "error": error,
                            "max_retries": policy.max_retries, "timestamp": _now()}))
                        yield Delay(policy.delay_for(attempt))
                        continue
                    if policy.on_fail == "skip":
                        self.results[name] = None
                        yield Put(Action(A.PHASE_SKIPPED, {"name": name, "error": error,
                                                           "timestamp": _now()}))
                        outcome = "skipped"
                    else:
                        yield Put(Action(A.PHASE_FAILED, {"name": name, "error": error,
                                                          "traceback": tb, "timestamp": _now()}))
                    break
                self.results[name] = result
                yield Put(Action(A.PHASE_COMPLETE, {"name": name, "result": result,
                                                    "timestamp": _now()}))
                outcome = "completed"
                break
        except SagaCancelled:
            reason = self._cancel_reason or "cancelled"
            yield Put(Action(A.PHASE_CANCELLED, {"name": name, "reason": reason,
                                                 "timestamp": _now()}))
            outcome = "cancelled"
        except GeneratorExit:
            raise
        except BaseException as exc:  # not the handler's: a listener or executor broke
            self._crash = self._crash or (exc.error if isinstance(exc, EmitFailed) else exc)
            outcome = "crashed"
        yield Send(done, (name, outcome))

    def _context(self, phase: Phase) -> PhaseContext | None:
        if not self._wants_context[phase.name]:
            return None
        results = {dep: self.results.get(dep) for dep in phase.depends_on}
        return PhaseContext(phase.name, results, self._plan.upstream(phase.name))

    @staticmethod
    def _event_actions(name: str, attempt: int) -> Any:
        """What the events of one attempt of phase ``name`` mean for the Store."""

        def to_actions(event: Any) -> Iterable[Action]:
            if type(event) is Log:
                stream, timestamp = event.stream, event.timestamp
                return [Action(A.PHASE_LOG, {"name": name, "line": line, "stream": stream,
                                             "timestamp": timestamp}) for line in event.lines]
            if type(event) is Started:
                return (Action(A.PHASE_START, {"name": name, "attempt": attempt,
                                               "timestamp": event.timestamp}),)
            return ()

        return to_actions

