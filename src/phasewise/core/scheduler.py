"""PipelineRun: the saga that schedules a pipeline's phases onto executors.

Dataflow scheduling: a phase is ready the moment all its dependencies have completed
or been skipped. Ready phases start in execution order, subject to two limits:

* at most ``max_workers`` phases run at once — or as many as the run's executors take
  at once (``Executor.max_in_flight``: executors that queue tasks take more, and the
  ones waiting in an executor's queue stay ``pending``);
* a ``parallel=False`` phase runs alone — it waits until nothing else runs, and nothing
  starts while it runs. A waiting exclusive phase also holds back phases after it, so it
  is never starved.

    saga():  _start ─▶ loop { _start_ready ─▶ Take(done) ─▶ _on_outcome } ─▶ _finish

Each started phase is a forked saga (``_phase_saga``) that dispatches its own
START / RETRY / COMPLETE / FAILED / SKIPPED / CANCELLED actions and reports its outcome
on the ``done`` channel the driver takes from.

Past 400 lines on purpose: the driver and a phase's saga share one run's state (its
results, why phases are cancelled, whether the run stopped); the phase's steps —
resumed, condition, cache, attempts, validation, hooks, review — are each a short
method below ``_phase_outcome``, in the order they happen.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.context import PhaseContext, RunParams
from phasewise.core.errors import ExecutorError, PhaseError, PhasewiseWarning, RemotePhaseError
from phasewise.core.executor import Executor, ExecutorLookup, ExecutorSession
from phasewise.core.phase import Phase
from phasewise.core.plan import Plan
from phasewise.core.saga import (
    Call,
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
from phasewise.core.services import PhaseCache, PhaseFolders
from phasewise.core.task import Remote, Task, handler_traceback, pickled_handler
from phasewise.core.wire import Log, Started

__all__ = ["PipelineRun", "RunOptions", "describe_error"]

Saga = Generator[Any, Any, Any]

_now = time.monotonic


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a pipeline: what ``Pipeline.run`` and ``build_saga`` take besides the
    Store. ``executors`` maps executor names to factories (the plugin registry's lookup
    when None). ``completed`` holds the results of phases not to run again (a resumed
    run's); ``cache`` answers for phases with ``Phase(cache=...)``; ``params`` are what
    handlers asking for ``params`` get, ``folders`` where those asking for ``workdir``
    work. ``review(phase, message, folder)`` is called after a phase with
    ``Phase(review=...)`` or named in ``pause_after``: False stops the run there.
    ``keeps_results``: something records each result as its phase completes (a work
    directory), so a result kept on a cluster is fetched before — the recorder pickles
    it while the Store is locked, where fetching could wait on the very thread that
    delivers the executor's events to the Store."""

    executor: str = "thread"
    max_workers: int | None = None
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    executors: ExecutorLookup | None = None
    capture_output: bool = False
    fail_fast: bool = False
    completed: Mapping[str, Any] = field(default_factory=dict)
    cache: PhaseCache | None = None
    params: RunParams = field(default_factory=RunParams)
    folders: PhaseFolders | None = None
    review: Callable[[str, str, Path | None], bool] | None = None
    pause_after: frozenset[str] = frozenset()
    keeps_results: bool = False


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(error, traceback)`` for a phase's failure: "Type: message" and the formatted
    traceback from the handler down (the worker's own, for errors raised elsewhere)."""
    if isinstance(exc, RemotePhaseError):
        return str(exc), exc.remote_traceback
    if isinstance(exc, PhaseError):
        return str(exc), ""
    message = str(exc)
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return error, handler_traceback(exc)


class PipelineRun:
    """One run of a planned pipeline; ``saga()`` is what the Store runs. ``results``
    fills in as phases complete."""

    def __init__(self, plan: Plan, options: RunOptions,
                 results: dict[str, Any] | None = None) -> None:
        lookup = options.executors
        if lookup is None:
            from phasewise.core.services import lookup_executor

            lookup = lookup_executor
        self.plan = plan
        self.options = options
        self.max_workers = options.max_workers or os.cpu_count() or 1
        self.session = ExecutorSession(lookup, options.executor, self.max_workers,
                                       options.executor_options)
        self.results = results if results is not None else {}
        # the driver's state
        self._waiting = dict(plan.waiting)  # counts down as dependencies complete
        self._ready = list(plan.ready)  # a heap of positions in the execution order
        self._done = Channel()  # (phase, outcome) from each phase's saga
        self._running: dict[str, SagaTask] = {}
        self._started: set[str] = set()
        self._in_flight = self.max_workers
        self._exclusive = False  # a parallel=False phase runs
        self._failed: str | None = None  # the first phase that failed
        self._interrupted = False
        self._cancel_reason = ""  # what a cancelled phase's saga says of it
        self._cancelled_running = False  # running phases were cancelled (not a clean end)
        self._crash: BaseException | None = None  # infrastructure error to re-raise
        self._broken: ExecutorError | None = None  # an executor that cannot run phases
        self._stopped = ""  # why the run stopped at a review, if it did
        self._own_folders: PhaseFolders | None = None  # temporary ones, made by this run
        self.errors: dict[str, BaseException] = {}  # failures raised as a phase's error type

    # the driver

    def saga(self) -> Saga:
        ended_cleanly = False
        try:
            yield from self._start()
            try:
                while True:
                    yield from self._start_ready()
                    if not self._running:
                        break
                    name, outcome = yield Take(self._done)
                    yield from self._on_outcome(name, outcome)
            except SagaCancelled:
                self._interrupted = True
                yield from self._cancel_running("cancelled: interrupted")
            yield from self._finish()
            ended_cleanly = not (self._interrupted or self._cancelled_running)
        finally:
            # Not a yielded Call: this must also run when the generator is closed. A run
            # that did not end cleanly (Ctrl-C, fail_fast, an error) stops what still runs.
            try:
                self.session.shutdown(cancel=not ended_cleanly)
            finally:
                if self._own_folders is not None:
                    self._own_folders.close()
        if self._broken is not None:
            raise self._broken
        return self.results

    def _start(self) -> Saga:
        """Create the executors (an executor's bad options, or one that cannot work,
        raise before anything is announced), announce the run, check the handlers that
        must cross to another process pickle."""
        executors = [self.session.get(name) for name in self.plan.executors]
        yield Put(Action(A.PIPELINE_START, _now()))
        self._in_flight = self._in_flight_for(executors)
        unsendable = self._unsendable_phase()
        if unsendable is not None:
            self._failed = unsendable[0]
            self._started.add(self._failed)
            yield Put(Action(A.PHASE_FAILED, {"name": self._failed, "error": unsendable[1],
                                              "timestamp": _now()}))

    def _in_flight_for(self, executors: list[Executor]) -> int:
        """How many phases may be handed over at once: the least any executor takes
        (``Executor.max_in_flight``; None, or an executor without the attribute, takes
        ``max_workers``)."""
        limits = [getattr(executor, "max_in_flight", None) or self.max_workers
                  for executor in executors]
        return min(limits, default=self.max_workers)

    def _start_ready(self) -> Saga:
        """Start ready phases, in execution order, while the limits allow."""
        ready, in_order = self._ready, self.plan.in_order
        while ready and self._failed is None and not self._exclusive and not self._stopped:
            phase = in_order[ready[0]]
            if not phase.parallel and self._running:
                break  # an exclusive phase waits for the others to finish
            if phase.parallel and len(self._running) >= self._in_flight:
                break
            heapq.heappop(ready)
            self._started.add(phase.name)
            self._exclusive = not phase.parallel
            self._running[phase.name] = yield Fork(self._phase_saga(phase))

    def _on_outcome(self, name: str, outcome: str) -> Saga:
        """Phase ``name`` has ended: release its dependants, or act on its failure."""
        del self._running[name]
        self._exclusive = False
        if outcome in ("completed", "skipped"):
            for child in self.plan.dependants[name]:
                self._waiting[child] -= 1
                if self._waiting[child] == 0:
                    heapq.heappush(self._ready, self.plan.order[child])
            if self._stopped and not self._interrupted:  # the user stopped at a review
                self._interrupted = True
                yield from self._cancel_running(f"cancelled: {self._stopped}")
        elif outcome == "broken":  # its executor cannot run any phase
            self._failed = self._failed or name
            yield from self._cancel_running(f"cancelled: {self._broken}")
        elif outcome == "crashed":
            yield from self._cancel_running("cancelled: the run broke")
            raise self._crash or RuntimeError(f"phase {name!r} crashed")
        elif outcome == "failed" and self._failed is None:
            self._failed = name
            if self.options.fail_fast and self._running:
                yield from self._cancel_running(
                    f"cancelled: phase {name!r} failed (fail_fast)")
            else:  # running phases finish; those still queued do not start
                self._cancel_reason = f"not started: phase {name!r} failed"
                for task in list(self._running.values()):
                    yield Cancel(task, unstarted_only=True)

    def _finish(self) -> Saga:
        """Phases that never started end cancelled; results kept on a cluster are
        fetched (``Remote``), for the run's results; the run ends with its status."""
        for name, value in self.results.items():
            if type(value) is Remote and not self._interrupted:
                try:
                    self.results[name] = value.fetch()
                except Exception as exc:  # the cluster lost it: the Remote stands in
                    warnings.warn(PhasewiseWarning(
                        f"the result of phase {name!r}, kept on its executor, could not be "
                        f"fetched: {type(exc).__name__}: {exc}"), stacklevel=2)
        if self._stopped:
            reason = f"not started: {self._stopped}"
        elif self._interrupted:
            reason = "not started: the run was interrupted"
        elif self._failed is not None:
            reason = f"not started: phase {self._failed!r} failed"
        else:
            reason = "not started: a dependency did not complete"
        for p in self.plan.phases:
            if p.name not in self._started:
                yield Put(Action(A.PHASE_CANCELLED, {"name": p.name, "reason": reason,
                                                     "timestamp": _now()}))
        payload: dict[str, Any] = {"timestamp": _now()}
        if self._interrupted:
            payload["status"] = "cancelled"
        elif self._failed is not None:
            payload["status"] = "failed"
        yield Put(Action(A.PIPELINE_COMPLETE, payload))

    def _cancel_running(self, reason: str) -> Saga:
        """Cancel every running phase and wait until each has ended."""
        self._cancel_reason = reason
        self._cancelled_running = True
        for task in list(self._running.values()):
            yield Cancel(task)
        while self._running:
            name, _ = yield Take(self._done)
            del self._running[name]

    def _unsendable_phase(self) -> tuple[str, str] | None:
        """The first phase whose handler cannot be pickled for the executor it is bound
        for, with the reason; checked before any phase starts."""
        crossing = {name for name in self.plan.executors
                    if getattr(self.session.get(name), "crosses_processes", False)}
        if not crossing:
            return None
        for phase in self.plan.phases:
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

    # one phase

    def _phase_saga(self, phase: Phase) -> Saga:
        """Run ``phase`` as its options say; send its outcome to the driver."""
        name = phase.name
        try:
            outcome = yield from self._phase_outcome(phase)
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
        yield Send(self._done, (name, outcome))

    def _phase_outcome(self, phase: Phase) -> Generator[Any, Any, str]:
        """Resumed, condition, cache, then the attempts; returns the outcome."""
        name = phase.name
        if name in self.options.completed:  # in the run this one resumes
            yield from self._complete(name, self.options.completed[name], resumed=True)
            return "completed"
        asks = self.plan.asks[name]
        try:
            context = self._context(phase) if "context" in asks or phase.when else None
        except Exception as exc:  # a dependency's result kept on a cluster is lost
            return (yield from self._fail(phase, exc))
        params = self.options.params
        if phase.when is not None:
            met = yield from self._condition(phase, context, params)
            if met is not True:
                return met or "failed"
        cache = self.options.cache if phase.cache is not False else None
        if cache is not None:
            hit, value = cache.lookup(phase, context, params)
            if hit:
                yield from self._complete(name, value, cached=True)
                return "completed"
        folder = None
        if "workdir" in asks or "{workdir}" in phase.review:
            folder = self._folders().folder(name)
        task_context = context if "context" in asks else None
        task_params = params if "params" in asks else None
        task_folder = folder if "workdir" in asks else None
        executor = self.session.get(phase.executor)  # started before the first phase
        attempt = 0
        while True:
            attempt += 1
            task = Task(name, phase.handler, task_context, attempt=attempt,
                        capture_output=self.options.capture_output, timeout=phase.timeout,
                        params=task_params, workdir=task_folder, resources=phase.resources)
            try:
                result = yield Execute(task, executor, self._event_actions(
                    name, attempt, phase.executor or self.options.executor))
                if type(result) is Remote:
                    if cache or phase.validate or phase.on_success:
                        result = result.fetch()  # kept on a cluster, but needed here
                    elif self.options.keeps_results:
                        result.fetch()  # the value, for the record; dependants get the Remote
                warnings = phase.validate(result) if phase.validate is not None else None
            except SagaCancelled:
                raise
            except ExecutorError as exc:  # not this phase's fault: no retry, the run stops
                self._broken = self._broken or exc
                yield Put(Action(A.PHASE_FAILED, {"name": name, "error": str(exc),
                                                  "timestamp": _now()}))
                return "broken"
            except Exception as exc:
                if attempt < phase.policy.attempts:
                    yield from self._retry(phase, attempt, exc)
                    continue
                return (yield from self._fail(phase, exc))
            yield from self._log(name, [f"warning: {w}" for w in warnings or ()])
            if cache is not None:
                cache.store(phase, context, params, result)
            yield from self._complete(name, result)
            yield from self._hook(phase, "on_success", result)
            yield from self._review(phase, folder)
            return "completed"

    def _condition(self, phase: Phase, context: PhaseContext | None,
                   params: RunParams) -> Generator[Any, Any, bool | str]:
        """True if ``phase.when`` holds; else the phase ends here: "skipped" (the
        condition is false) or "failed" (it raised)."""
        assert phase.when is not None
        given = {"context": context, "params": params}
        try:
            met = phase.when(**{n: given[n] for n in self.plan.when_asks[phase.name]})
        except Exception as exc:
            error, tb = describe_error(exc)
            yield Put(Action(A.PHASE_FAILED, {"name": phase.name, "traceback": tb,
                                              "error": f"its condition raised {error}",
                                              "timestamp": _now()}))
            return "failed"
        if met:
            return True
        self.results[phase.name] = None
        yield Put(Action(A.PHASE_SKIPPED, {"name": phase.name, "error": "condition not met",
                                           "timestamp": _now()}))
        return "skipped"

    def _retry(self, phase: Phase, attempt: int, exc: BaseException) -> Saga:
        error, _ = describe_error(exc)
        yield Put(Action(A.PHASE_RETRY, {
            "name": phase.name, "attempt": attempt + 1, "error": error,
            "max_retries": phase.policy.max_retries, "timestamp": _now()}))
        yield Delay(phase.policy.delay_for(attempt))

    def _fail(self, phase: Phase, exc: BaseException) -> Generator[Any, Any, str]:
        """The last attempt failed: skip or fail as the policy says; returns the outcome."""
        name = phase.name
        error, tb = describe_error(exc)
        if phase.error is not None:  # reported, and raised by raise_for_status, as its type
            message = exc.remote_message if isinstance(exc, RemotePhaseError) else str(exc)
            error = f"{phase.error.__name__}: {message or type(exc).__name__}"
            try:
                typed = phase.error(message)
            except Exception:  # an exception type that wants other arguments
                typed = None
            if typed is not None:
                typed.__cause__ = exc
                self.errors[name] = typed
        if phase.policy.on_fail == "skip":
            self.results[name] = None
            yield Put(Action(A.PHASE_SKIPPED, {"name": name, "error": error,
                                               "timestamp": _now()}))
            outcome = "skipped"
        else:
            yield Put(Action(A.PHASE_FAILED, {"name": name, "error": error,
                                              "traceback": tb, "timestamp": _now()}))
            outcome = "failed"
        yield from self._hook(phase, "on_failure", exc)
        return outcome

    def _hook(self, phase: Phase, which: str, argument: Any) -> Saga:
        """Call ``phase.on_success`` / ``on_failure``; one that raises is logged against the
        phase and changes nothing else."""
        hook = getattr(phase, which)
        if hook is None:
            return
        try:
            hook(argument)
        except Exception as exc:
            error, _ = describe_error(exc)
            yield from self._log(phase.name, [f"{which} hook raised {error}"])

    def _review(self, phase: Phase, folder: Path | None) -> Saga:
        """Pause after ``phase`` if it asks for a review (or ``pause_after`` names it)."""
        review = self.options.review
        if review is None or not (phase.review or phase.name in self.options.pause_after):
            return
        message = phase.review or f"phase {phase.label!r} is done"
        try:
            message = message.format(workdir=folder or "", name=phase.name, label=phase.label)
        except (KeyError, IndexError, ValueError):
            pass  # braces meant literally
        go_on = yield Call(review, args=(phase.name, message, folder))
        if not go_on:
            self._stopped = f"the run was stopped at the review after phase {phase.name!r}"

    def _log(self, name: str, lines: Iterable[str]) -> Saga:
        for line in lines:
            yield Put(Action(A.PHASE_LOG, {"name": name, "line": line, "stream": "stderr",
                                           "timestamp": _now()}))

    def _folders(self) -> PhaseFolders:
        if self.options.folders is None:
            from phasewise.core.services import temporary_folders

            self._own_folders = temporary_folders()
            self.options = dataclasses.replace(self.options, folders=self._own_folders)
        assert self.options.folders is not None
        return self.options.folders

    def _complete(self, name: str, result: Any, **flags: bool) -> Saga:
        self.results[name] = result
        yield Put(Action(A.PHASE_COMPLETE, {"name": name, "result": result, **flags,
                                            "timestamp": _now()}))

    def _context(self, phase: Phase) -> PhaseContext:
        """Its dependencies' results; one kept on a cluster (``Remote``) stays there if
        this phase runs on the executor that keeps it and only its handler needs it."""
        keeper = (self.session.get(phase.executor) if phase.when is None
                  and phase.cache is False else None)
        results: dict[str, Any] = {}
        for dep in phase.depends_on:
            value = self.results.get(dep)
            if type(value) is Remote and value.holder is not keeper:
                value = value.fetch()  # fetched once, kept in the Remote
            results[dep] = value
        return PhaseContext(phase.name, results, self.plan.upstream(phase.name))

    @staticmethod
    def _event_actions(name: str, attempt: int, executor: str) -> Any:
        """What the events of one attempt of phase ``name`` (on the executor named
        ``executor``) mean for the Store."""

        def to_actions(event: Any) -> Iterable[Action]:
            if type(event) is Log:
                stream, timestamp = event.stream, event.timestamp
                return [Action(A.PHASE_LOG, {"name": name, "line": line, "stream": stream,
                                             "timestamp": timestamp}) for line in event.lines]
            if type(event) is Started:
                return (Action(A.PHASE_START, {
                    "name": name, "attempt": attempt, "timestamp": event.timestamp,
                    "executor": executor, "worker": event.worker}),)
            return ()

        return to_actions
