"""The scheduler (``core.scheduler.PipelineRun``) through its real parts: pipelines run on
the inline and thread executors, a recording Store, and ``RunOptions`` / ``Plan`` /
``PipelineRun`` where a test needs what ``Pipeline.run`` does not pass.

Phases that must run at once meet at a ``threading.Barrier`` (it times out, so a
scheduler that keeps them apart fails the phase instead of hanging); what the scheduler
handed an executor, and when, is recorded by ``Watched`` around the thread pool. Tests
assert the order of actions and submissions, never timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasewise import Action, Phase, PhasePolicy, Pipeline, Store
from phasewise.core import actions as A
from phasewise.core.errors import ExecutorError
from phasewise.core.plan import Plan
from phasewise.core.scheduler import PipelineRun, RunOptions
from phasewise.core.task import Task
from phasewise.executors import InlineExecutor, ThreadExecutor

pytestmark = pytest.mark.timeout(60)

MEET_LIMIT = 10.0  # seconds a barrier waits for the other phases before it breaks


# ── what the scheduler hands an executor ────────────────────────────────────


class Ledger:
    """Every submission to the executors sharing it: the phase, and the phases then
    outstanding (submitted, future not yet done) and done."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outstanding: set[str] = set()
        self.done: set[str] = set()
        self.submits: list[tuple[str, frozenset[str], frozenset[str]]] = []

    def submitted(self, name: str) -> None:
        with self.lock:
            self.submits.append((name, frozenset(self.outstanding), frozenset(self.done)))
            self.outstanding.add(name)

    def finished(self, name: str) -> None:
        with self.lock:
            self.outstanding.discard(name)
            self.done.add(name)

    def order(self) -> list[str]:
        return [name for name, _, _ in self.submits]

    def most_at_once(self) -> int:
        return max((len(outstanding) + 1 for _, outstanding, _ in self.submits), default=0)


class Bare:
    """An executor with the two methods and none of the protocol's attributes, around
    another; it records its submissions in a Ledger."""

    def __init__(self, inner: Any, ledger: Ledger | None = None) -> None:
        self.inner = inner
        self.ledger = ledger or Ledger()
        self.shutdowns: list[bool] = []

    def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        self.ledger.submitted(task.phase)
        future: Future[Any] = self.inner.submit(task, emit)
        # registered before the run's own callback: the ledger knows first
        future.add_done_callback(lambda _, name=task.phase: self.ledger.finished(name))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        self.shutdowns.append(cancel)
        self.inner.shutdown(cancel=cancel)


class Watched(Bare):
    """``Bare`` with the attributes: ``max_in_flight`` as given, ``reports_start`` as the
    inner executor's, ``crosses_processes`` as given (its tasks still run here)."""

    def __init__(self, inner: Any, ledger: Ledger | None = None, *,
                 max_in_flight: int | None = None, crosses_processes: bool = False) -> None:
        super().__init__(inner, ledger)
        self.max_in_flight = max_in_flight
        self.reports_start = getattr(inner, "reports_start", False)
        self.crosses_processes = crosses_processes


def lookup(**executors: Any) -> Callable[[str], Callable[..., Any]]:
    """An executor lookup that hands out the given executor objects by name."""

    def find(name: str) -> Callable[..., Any]:
        executor = executors[name]
        return lambda max_workers=None, **options: executor

    return find


def threads(n: int = 8) -> ThreadExecutor:
    return ThreadExecutor(max_workers=n)


# ── helpers ─────────────────────────────────────────────────────────────────


def events(actions: list[Action]) -> list[tuple[str, str]]:
    """``(type, phase)`` of each phase action, without the ``@@PHASE_`` prefix."""
    return [(a.type.removeprefix("@@PHASE_"), a.payload["name"]) for a in actions
            if a.type.startswith("@@PHASE_") and a.type != A.PHASE_LOG]


def payload(actions: list[Action], kind: str, name: str) -> dict[str, Any]:
    (found,) = [a.payload for a in actions if a.type == kind and a.payload["name"] == name]
    return found  # type: ignore[no-any-return]


def at(actions: list[Action], kind: str, name: str) -> int:
    (index,) = [i for i, a in enumerate(actions)
                if a.type == kind and isinstance(a.payload, dict) and a.payload["name"] == name]
    return index


def statuses(state: Any) -> dict[str, str]:
    return {p.name: p.status for p in state.phases}


def reasons(state: Any) -> dict[str, str]:
    return {p.name: p.error for p in state.phases if p.status == "cancelled"}


def run_saga(pipeline: Pipeline, options: RunOptions,
             recording_store: Callable[[Pipeline], tuple[Store, list[Action]]],
             ) -> tuple[PipelineRun, Store, list[Action]]:
    """Run ``pipeline`` with ``options`` as ``Pipeline.run`` does, but with options it
    does not pass (``completed``, ``cache``)."""
    store, actions = recording_store(pipeline)
    run = PipelineRun(Plan(pipeline.phases, pipeline.execution_order()), options)
    store.run_saga(run.saga)
    return run, store, actions


def const(value: Any) -> Any:
    return value


def meet(barrier: threading.Barrier, value: Any = None) -> Any:
    barrier.wait()  # only passes when the barrier's parties all run at once
    return value


def boom(message: str = "boom") -> None:
    raise ValueError(message)


# ── the order of actions ────────────────────────────────────────────────────


def test_a_run_announces_itself_then_each_phase_then_its_end(recording_store: Any) -> None:
    pipeline = Pipeline("order", Phase("a", partial(const, 1)),
                        Phase("b", lambda context: context["a"] + 1, depends_on="a"))
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="inline", store=store)
    assert result.results == {"a": 1, "b": 2}
    assert [a.type for a in actions] == [
        A.INIT, A.PIPELINE_START,
        A.PHASE_START, A.PHASE_COMPLETE, A.PHASE_START, A.PHASE_COMPLETE,
        A.PIPELINE_COMPLETE,
    ]
    assert events(actions) == [("START", "a"), ("COMPLETE", "a"),
                               ("START", "b"), ("COMPLETE", "b")]
    assert payload(actions, A.PHASE_COMPLETE, "b")["result"] == 2
    assert payload(actions, A.PHASE_START, "a")["attempt"] == 1
    assert "status" not in actions[-1].payload  # completed: the reducer's own verdict
    assert result.status == "completed"


def test_retries_announce_each_attempt_and_the_error_before_it(recording_store: Any,
                                                               tmp_path: Path) -> None:
    tries = tmp_path / "tries"

    def flaky() -> int:
        with tries.open("a") as f:
            f.write("x")
        if len(tries.read_text()) < 3:
            raise OSError(f"try {len(tries.read_text())}")
        return len(tries.read_text())

    retry = PhasePolicy(on_fail="retry", max_retries=2, retry_delay=0)
    pipeline = Pipeline("retry", Phase("f", flaky, policy=retry))
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="inline", store=store)
    assert result.results == {"f": 3}
    assert events(actions) == [("START", "f"), ("RETRY", "f"), ("START", "f"),
                               ("RETRY", "f"), ("START", "f"), ("COMPLETE", "f")]
    starts = [a.payload["attempt"] for a in actions if a.type == A.PHASE_START]
    retries = [(a.payload["attempt"], a.payload["error"], a.payload["max_retries"])
               for a in actions if a.type == A.PHASE_RETRY]
    assert starts == [1, 2, 3]
    assert retries == [(2, "OSError: try 1", 2), (3, "OSError: try 2", 2)]


def test_validation_warnings_are_logged_before_the_phase_completes(
        recording_store: Any) -> None:
    pipeline = Pipeline("warn", Phase("a", partial(const, 0),
                                      validate=lambda r: ["it is zero"] if r == 0 else []))
    store, actions = recording_store(pipeline)
    pipeline.run(executor="inline", store=store)
    logs = [a for a in actions if a.type == A.PHASE_LOG]
    assert [(a.payload["line"], a.payload["stream"]) for a in logs] == [
        ("warning: it is zero", "stderr")]
    assert at(actions, A.PHASE_START, "a") < actions.index(logs[0]) < at(
        actions, A.PHASE_COMPLETE, "a")


def test_a_hook_that_raises_is_logged_after_the_outcome_and_changes_nothing(
        recording_store: Any) -> None:
    def bad_hook(_: Any) -> None:
        raise RuntimeError("hook broke")

    pipeline = Pipeline("hooks", Phase("a", partial(const, 1), on_success=bad_hook),
                        Phase("b", boom, on_failure=bad_hook))
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="inline", store=store)
    assert statuses(result.state) == {"a": "completed", "b": "failed"}
    lines = [(a.payload["name"], a.payload["line"]) for a in actions if a.type == A.PHASE_LOG]
    assert lines == [("a", "on_success hook raised RuntimeError: hook broke"),
                     ("b", "on_failure hook raised RuntimeError: hook broke")]
    log_a = next(i for i, a in enumerate(actions) if a.type == A.PHASE_LOG)
    assert at(actions, A.PHASE_COMPLETE, "a") < log_a


# ── dataflow readiness ──────────────────────────────────────────────────────


def test_a_phase_starts_when_its_own_dependencies_are_done_not_its_level(
        recording_store: Any) -> None:
    """``c`` depends on ``b`` only: it runs while ``a``, of ``b``'s level, still waits
    for it."""
    c_ran = threading.Event()
    pipeline = Pipeline(
        "dataflow",
        Phase("a", lambda: c_ran.wait(MEET_LIMIT), parallel=True),
        Phase("b", partial(const, "b"), parallel=True),
        Phase("c", lambda context: c_ran.set(), depends_on="b", parallel=True),
    )
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="thread", max_workers=3, store=store)
    assert result.results["a"] is True, "c did not run until a had ended"
    assert at(actions, A.PHASE_START, "c") < at(actions, A.PHASE_COMPLETE, "a")
    assert at(actions, A.PHASE_COMPLETE, "b") < at(actions, A.PHASE_START, "c")


def test_a_phase_is_handed_over_only_once_every_dependency_is_done() -> None:
    watched = Watched(threads())
    pipeline = Pipeline(
        "diamond",
        Phase("top", partial(const, 1), parallel=True),
        Phase("left", lambda context: context["top"] + 1, depends_on="top", parallel=True),
        Phase("right", lambda context: context["top"] + 2, depends_on="top", parallel=True),
        Phase("bottom", lambda context: context["left"] * context["right"],
              depends_on=("left", "right"), parallel=True),
    )
    result = pipeline.run(executor="w", executors=lookup(w=watched), max_workers=4)
    assert result.results == {"top": 1, "left": 2, "right": 3, "bottom": 6}
    done_when = {name: done for name, _, done in watched.ledger.submits}
    assert done_when["bottom"] >= {"top", "left", "right"}
    assert done_when["left"] >= {"top"} and done_when["right"] >= {"top"}
    assert watched.ledger.order()[0] == "top" and watched.ledger.order()[-1] == "bottom"


def test_a_skipped_dependency_releases_its_dependants_with_none() -> None:
    pipeline = Pipeline(
        "skip",
        Phase("a", boom, policy=PhasePolicy(on_fail="skip")),
        Phase("b", lambda context: ("got", context["a"]), depends_on="a"),
    )
    result = pipeline.run(executor="inline")
    assert result.ok
    assert statuses(result.state) == {"a": "skipped", "b": "completed"}
    assert result.results == {"a": None, "b": ("got", None)}
    assert result.state.phase("a").error == "ValueError: boom"


# ── exclusive and parallel phases, the in-flight limit ──────────────────────


def test_an_exclusive_phase_runs_alone_and_holds_back_the_phases_after_it(
        recording_store: Any) -> None:
    pair, later = threading.Barrier(2, timeout=MEET_LIMIT), threading.Barrier(2, timeout=MEET_LIMIT)
    watched = Watched(threads())
    pipeline = Pipeline(
        "exclusive",
        Phase("a1", partial(meet, pair), parallel=True),
        Phase("a2", partial(meet, pair), parallel=True),
        Phase("b", partial(const, "alone"), parallel=False),
        Phase("c1", partial(meet, later), parallel=True),
        Phase("c2", partial(meet, later), parallel=True),
    )
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="w", executors=lookup(w=watched), max_workers=4,
                          store=store)
    assert result.ok, result.state
    submits = {name: (outstanding, done) for name, outstanding, done in watched.ledger.submits}
    assert submits["b"] == (frozenset(), {"a1", "a2"})  # the others had ended
    assert "b" in submits["c1"][1] and "b" in submits["c2"][1]  # nothing passed it
    # the same, as the Store saw it
    start_b, complete_b = at(actions, A.PHASE_START, "b"), at(actions, A.PHASE_COMPLETE, "b")
    assert max(at(actions, A.PHASE_COMPLETE, n) for n in ("a1", "a2")) < start_b
    assert complete_b < min(at(actions, A.PHASE_START, n) for n in ("c1", "c2"))


def test_phases_of_a_non_parallel_pipeline_run_one_after_another() -> None:
    watched = Watched(threads())
    pipeline = Pipeline("serial", *(Phase(f"p{i}", partial(const, i)) for i in range(5)))
    result = pipeline.run(executor="w", executors=lookup(w=watched), max_workers=4)
    assert result.ok
    assert watched.ledger.order() == [f"p{i}" for i in range(5)]
    assert watched.ledger.most_at_once() == 1


@pytest.mark.parametrize(("max_in_flight", "max_workers", "limit"), [
    (2, 8, 2),  # the executor takes fewer than max_workers
    (4, 2, 4),  # an executor that queues takes more
    (None, 3, 3),  # None: max_workers
])
def test_no_more_phases_than_the_executor_takes_are_in_flight(
        max_in_flight: int | None, max_workers: int, limit: int) -> None:
    barrier = threading.Barrier(limit, timeout=MEET_LIMIT)  # passes only `limit` at once
    watched = Watched(threads(8), max_in_flight=max_in_flight)
    pipeline = Pipeline("limit", *(Phase(f"p{i}", partial(meet, barrier, i), parallel=True)
                                   for i in range(2 * limit)))
    result = pipeline.run(executor="w", executors=lookup(w=watched), max_workers=max_workers)
    assert result.ok, result.state
    assert watched.ledger.most_at_once() == limit
    assert watched.ledger.order() == [f"p{i}" for i in range(2 * limit)]  # in order


def test_an_executor_without_the_attribute_takes_max_workers() -> None:
    barrier = threading.Barrier(3, timeout=MEET_LIMIT)
    bare = Bare(threads(8))
    pipeline = Pipeline("bare", *(Phase(f"p{i}", partial(meet, barrier), parallel=True)
                                  for i in range(6)))
    result = pipeline.run(executor="bare", executors=lookup(bare=bare), max_workers=3)
    assert result.ok, result.state
    assert bare.ledger.most_at_once() == 3
    assert bare.shutdowns == [False]  # a clean end: nothing to cancel


def test_with_several_executors_the_smallest_limit_holds() -> None:
    ledger = Ledger()
    wide = Watched(threads(), ledger, max_in_flight=8)
    narrow = Watched(threads(), ledger, max_in_flight=1)
    pipeline = Pipeline("two", *(Phase(f"p{i}", partial(const, i), parallel=True,
                                       executor="narrow" if i % 2 else None)
                                 for i in range(6)))
    result = pipeline.run(executor="wide", executors=lookup(wide=wide, narrow=narrow),
                          max_workers=8)
    assert result.ok, result.state
    assert ledger.most_at_once() == 1
    assert [len(ex.ledger.submits) for ex in (wide, narrow)] == [6, 6]  # shared
    assert sorted(ledger.order()) == [f"p{i}" for i in range(6)]


# ── property: any graph, any limits ─────────────────────────────────────────


@st.composite
def graphs(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...], bool]]:
    """``(name, depends_on, parallel)`` for up to seven phases; each depends on some of
    the ones before it."""
    n = draw(st.integers(1, 7))
    phases = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        phases.append((f"p{i}", tuple(f"p{d}" for d in sorted(deps)), draw(st.booleans())))
    return phases


def node(name: str, context: Mapping[str, Any]) -> int:
    return 1 + sum(context.values())


@given(graphs(), st.sampled_from([None, 1, 2, 3]), st.integers(1, 3))
def test_any_graph_runs_each_phase_once_after_its_dependencies_within_the_limits(
        shape: list[tuple[str, tuple[str, ...], bool]], max_in_flight: int | None,
        max_workers: int) -> None:
    watched = Watched(threads(3), max_in_flight=max_in_flight)
    phases = [Phase(name, partial(node, name), depends_on=deps, parallel=parallel)
              for name, deps, parallel in shape]
    result = Pipeline("any", *phases).run(executor="w", executors=lookup(w=watched),
                                          max_workers=max_workers)
    expected: dict[str, int] = {}
    for name, deps, _ in shape:
        expected[name] = 1 + sum(expected[d] for d in deps)
    assert result.ok, result.state
    assert result.results == expected
    ledger, exclusive = watched.ledger, {name for name, _, parallel in shape if not parallel}
    assert sorted(ledger.order()) == sorted(expected)  # each once
    assert ledger.most_at_once() <= (max_in_flight or max_workers)
    deps_of = {name: deps for name, deps, _ in shape}
    for name, outstanding, done in ledger.submits:
        assert set(deps_of[name]) <= done
        assert not outstanding & exclusive, f"{name} started while an exclusive phase ran"
        if name in exclusive:
            assert not outstanding, f"exclusive {name} started beside {sorted(outstanding)}"


@given(graphs())
def test_one_at_a_time_phases_start_in_execution_order(
        shape: list[tuple[str, tuple[str, ...], bool]]) -> None:
    phases = [Phase(name, partial(node, name), depends_on=deps, parallel=parallel)
              for name, deps, parallel in shape]
    pipeline = Pipeline("ordered", *phases)
    watched = Watched(InlineExecutor())
    assert pipeline.run(executor="w", executors=lookup(w=watched), max_workers=1).ok
    assert watched.ledger.order() == pipeline.execution_order()


# ── stop, fail_fast, skip: and why unstarted phases end ─────────────────────


def test_a_failure_stops_the_run_and_unstarted_phases_say_why(recording_store: Any) -> None:
    pipeline = Pipeline(
        "stop",
        Phase("a", boom),
        Phase("b", partial(const, "never")),
        Phase("c", partial(const, "never"), depends_on="a"),
    )
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="inline", store=store)
    assert result.status == "failed"
    assert statuses(result.state) == {"a": "failed", "b": "cancelled", "c": "cancelled"}
    assert reasons(result.state) == {"b": "not started: phase 'a' failed",
                                     "c": "not started: phase 'a' failed"}
    assert result.state.phase("a").error == "ValueError: boom"
    assert "boom" in result.state.phase("a").traceback
    assert actions[-1].payload["status"] == "failed"
    assert events(actions) == [("START", "a"), ("FAILED", "a"),
                               ("CANCELLED", "b"), ("CANCELLED", "c")]


def test_without_fail_fast_running_phases_finish_and_queued_ones_are_withdrawn(
        recording_store: Any) -> None:
    """``blocker`` holds the one thread of executor ``q``, so ``d`` waits in its queue;
    ``a`` fails meanwhile. ``blocker`` is released only once ``d`` has been withdrawn."""
    blocker_runs, release = threading.Event(), threading.Event()

    def fails_while_blocker_runs() -> None:
        assert blocker_runs.wait(MEET_LIMIT)
        raise RuntimeError("a broke")

    def blocker() -> str:
        blocker_runs.set()
        release.wait(MEET_LIMIT)
        return "finished"

    queue = Watched(threads(1), max_in_flight=4)
    pipeline = Pipeline(
        "finish",
        Phase("a", fails_while_blocker_runs, parallel=True),
        Phase("after_a", partial(const, "never"), depends_on="a", parallel=True),
        Phase("blocker", blocker, executor="q", parallel=True),
        Phase("d", partial(const, "queued"), executor="q", parallel=True),
    )
    store, actions = recording_store(pipeline)
    store.subscribe(lambda: store.state.phase("d").status == "cancelled" and release.set())
    try:
        result = pipeline.run(executor="t", executors=lookup(t=threads(2), q=queue),
                              max_workers=2, store=store)
    finally:
        release.set()
    assert result.status == "failed"
    assert statuses(result.state) == {"a": "failed", "after_a": "cancelled",
                                      "blocker": "completed", "d": "cancelled"}
    assert result.results["blocker"] == "finished"
    assert reasons(result.state) == {"after_a": "not started: phase 'a' failed",
                                     "d": "not started: phase 'a' failed"}
    assert queue.ledger.order() == ["blocker", "d"]  # d was handed over, then withdrawn
    assert ("START", "d") not in events(actions)
    assert at(actions, A.PHASE_FAILED, "a") < at(actions, A.PHASE_CANCELLED, "d") < at(
        actions, A.PHASE_COMPLETE, "blocker")


def test_fail_fast_cancels_running_phases_with_the_reason(recording_store: Any) -> None:
    b_runs, release = threading.Event(), threading.Event()

    def fails_while_b_runs() -> None:
        assert b_runs.wait(MEET_LIMIT)
        raise RuntimeError("a broke")

    def b() -> str:
        b_runs.set()
        release.wait(MEET_LIMIT)
        return "too late"

    watched = Watched(threads(2))
    pipeline = Pipeline(
        "fast",
        Phase("a", fails_while_b_runs, parallel=True),
        Phase("b", b, parallel=True),
        Phase("c", partial(const, "never"), depends_on="a", parallel=True),
        fail_fast=True,
    )
    store, actions = recording_store(pipeline)
    try:
        result = pipeline.run(executor="w", executors=lookup(w=watched), max_workers=2,
                              store=store)
    finally:
        release.set()
    assert result.status == "failed"
    assert statuses(result.state) == {"a": "failed", "b": "cancelled", "c": "cancelled"}
    assert reasons(result.state) == {"b": "cancelled: phase 'a' failed (fail_fast)",
                                     "c": "not started: phase 'a' failed"}
    assert at(actions, A.PHASE_FAILED, "a") < at(actions, A.PHASE_CANCELLED, "b")
    assert "b" not in result.results
    assert watched.shutdowns == [True]  # not a clean end: what still runs is stopped


def test_a_failed_phases_error_type_is_kept_for_raise_for_status() -> None:
    class Broken(Exception):
        pass

    result = Pipeline("typed", Phase("a", boom, error=Broken)).run(executor="inline")
    assert result.state.phase("a").error == "Broken: boom"
    with pytest.raises(Broken, match="boom") as info:
        result.raise_for_status()
    assert isinstance(info.value.__cause__, ValueError)


# ── resumed phases ──────────────────────────────────────────────────────────


def test_resumed_phases_complete_from_the_earlier_run_without_running(
        recording_store: Any) -> None:
    pipeline = Pipeline(
        "resume",
        Phase("a", partial(boom, "a must not run again")),
        Phase("b", lambda context: context["a"] * 2, depends_on="a"),
    )
    run, store, actions = run_saga(
        pipeline, RunOptions(executor="inline", completed={"a": 21}), recording_store)
    assert run.results == {"a": 21, "b": 42}
    assert store.state.status == "completed"
    complete_a = payload(actions, A.PHASE_COMPLETE, "a")
    assert complete_a["resumed"] is True and complete_a["result"] == 21
    assert not any(a.type == A.PHASE_START and a.payload["name"] == "a" for a in actions)
    assert events(actions) == [("COMPLETE", "a"), ("START", "b"), ("COMPLETE", "b")]


# ── the cache ───────────────────────────────────────────────────────────────


class MemoryCache:
    """A PhaseCache in a dict, keyed by phase name and inputs; it records its calls."""

    def __init__(self, known: dict[tuple[str, Any], Any] | None = None) -> None:
        self.known = dict(known or {})
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def key(phase: Phase, context: Mapping[str, Any] | None,
            params: Mapping[str, Any] | None) -> tuple[str, Any]:
        inputs = tuple(sorted((context or {}).items())) + tuple(sorted((params or {}).items()))
        return phase.name, inputs

    def lookup(self, phase: Phase, context: Mapping[str, Any] | None,
               params: Mapping[str, Any] | None) -> tuple[bool, Any]:
        self.calls.append(("lookup", phase.name))
        key = self.key(phase, context, params)
        return (key in self.known), self.known.get(key)

    def store(self, phase: Phase, context: Mapping[str, Any] | None,
              params: Mapping[str, Any] | None, result: Any) -> None:
        self.calls.append(("store", phase.name))
        self.known[self.key(phase, context, params)] = result


def test_a_cache_miss_runs_the_phase_and_stores_its_result(recording_store: Any) -> None:
    cache = MemoryCache()
    pipeline = Pipeline("miss", Phase("a", partial(const, 5), cache=True),
                        Phase("b", lambda context: context["a"] + 1, depends_on="a",
                              cache="1h"))
    run, _, actions = run_saga(pipeline, RunOptions(executor="inline", cache=cache),
                               recording_store)
    assert run.results == {"a": 5, "b": 6}
    assert cache.calls == [("lookup", "a"), ("store", "a"), ("lookup", "b"), ("store", "b")]
    assert cache.known == {("a", ()): 5, ("b", (("a", 5),)): 6}
    assert "cached" not in payload(actions, A.PHASE_COMPLETE, "a")


def test_a_cache_hit_completes_the_phase_without_running_it(recording_store: Any) -> None:
    cache = MemoryCache({("a", ()): "from before"})
    pipeline = Pipeline("hit", Phase("a", partial(boom, "must not run"), cache=True),
                        Phase("b", lambda context: context["a"].upper(), depends_on="a"))
    run, store, actions = run_saga(pipeline, RunOptions(executor="inline", cache=cache),
                                   recording_store)
    assert run.results == {"a": "from before", "b": "FROM BEFORE"}
    assert cache.calls == [("lookup", "a")]  # b has no cache=: never asked
    assert payload(actions, A.PHASE_COMPLETE, "a")["cached"] is True
    assert store.state.phase("a").cached is True
    assert events(actions)[0] == ("COMPLETE", "a")  # no START: it did not run


def test_a_failed_phase_is_not_stored(recording_store: Any) -> None:
    cache = MemoryCache()
    pipeline = Pipeline("nostore", Phase("a", boom, cache=True))
    _, store, _ = run_saga(pipeline, RunOptions(executor="inline", cache=cache),
                           recording_store)
    assert store.state.status == "failed"
    assert cache.calls == [("lookup", "a")]


# ── conditions ──────────────────────────────────────────────────────────────


def test_a_false_condition_skips_the_phase_and_releases_its_dependants() -> None:
    ran: list[str] = []
    pipeline = Pipeline(
        "when",
        Phase("a", partial(const, 0)),
        Phase("b", lambda: ran.append("b"), depends_on="a",
              when=lambda context: context["a"] > 0),
        Phase("c", lambda context: ("c", context["b"]), depends_on="b"),
    )
    result = pipeline.run(executor="inline")
    assert result.ok
    assert statuses(result.state) == {"a": "completed", "b": "skipped", "c": "completed"}
    assert result.state.phase("b").error == "condition not met"
    assert ran == []
    assert result.results["c"] == ("c", None)


def test_a_condition_sees_the_params_and_a_true_one_runs_the_phase() -> None:
    pipeline = Pipeline("params", Phase("a", partial(const, "ran"),
                                        when=lambda params: params["go"]),
                        params={"go": False})
    assert pipeline.run(executor="inline", params={"go": True}).results == {"a": "ran"}
    assert statuses(pipeline.run(executor="inline").state) == {"a": "skipped"}


def test_a_condition_that_raises_fails_the_phase() -> None:
    def broken(context: Any) -> bool:
        raise KeyError("nope")

    pipeline = Pipeline("raises", Phase("a", partial(const, 1), when=broken),
                        Phase("b", partial(const, 2), depends_on="a"))
    result = pipeline.run(executor="inline")
    assert result.status == "failed"
    assert result.state.phase("a").error == "its condition raised KeyError: 'nope'"
    assert "broken" in result.state.phase("a").traceback
    assert reasons(result.state) == {"b": "not started: phase 'a' failed"}


# ── the review stop ─────────────────────────────────────────────────────────


def test_a_review_that_says_stop_ends_the_run_cancelled(recording_store: Any) -> None:
    asked: list[tuple[str, str, Path | None]] = []

    def review(phase: str, message: str, folder: Path | None) -> bool:
        asked.append((phase, message, folder))
        return False

    pipeline = Pipeline(
        "review",
        Phase("a", partial(const, 1), review="look at {name} ({label})", label="Step A"),
        Phase("b", partial(const, 2), depends_on="a"),
        Phase("c", partial(const, 3)),
    )
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="inline", store=store, review=review)
    assert asked == [("a", "look at a (Step A)", None)]
    assert result.status == "cancelled"
    assert result.state.phase("a").status == "completed"
    stopped = "the run was stopped at the review after phase 'a'"
    assert reasons(result.state) == {"b": f"not started: {stopped}",
                                     "c": f"not started: {stopped}"}
    assert actions[-1].payload["status"] == "cancelled"


def test_a_review_that_says_go_on_and_pause_after() -> None:
    asked: list[str] = []

    def review(phase: str, message: str, folder: Path | None) -> bool:
        asked.append(f"{phase}: {message}")
        return True

    pipeline = Pipeline("go", Phase("a", partial(const, 1), review="check a"),
                        Phase("b", partial(const, 2), depends_on="a"),
                        Phase("c", partial(const, 3), depends_on="b"))
    result = pipeline.run(executor="inline", review=review, pause_after=["b"])
    assert result.ok
    assert asked == ["a: check a", "b: phase 'b' is done"]
    assert Pipeline("none", Phase("a", partial(const, 1), review="x")).run(
        executor="inline").ok  # without a review callback, nothing pauses


def test_a_review_stop_cancels_phases_still_running(recording_store: Any) -> None:
    release = threading.Event()

    def slow() -> str:
        release.wait(MEET_LIMIT)
        return "slow"

    def review(phase: str, message: str, folder: Path | None) -> bool:
        return False

    pipeline = Pipeline("busy", Phase("a", partial(const, 1), review="stop?", parallel=True),
                        Phase("b", slow, parallel=True))
    store, _ = recording_store(pipeline)
    try:
        result = pipeline.run(executor="thread", max_workers=2, store=store, review=review)
    finally:
        release.set()
    assert result.status == "cancelled"
    assert reasons(result.state) == {
        "b": "cancelled: the run was stopped at the review after phase 'a'"}


# ── an executor that cannot run phases ──────────────────────────────────────


class Refusing:
    """An executor whose every task fails with ExecutorError (it cannot run any)."""

    crosses_processes = False
    reports_start = False
    max_in_flight = None

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        self.submitted.append(task.phase)
        future: Future[Any] = Future()
        future.set_exception(ExecutorError("cluster", "the cluster is gone"))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass


def test_an_executor_error_stops_the_run_without_retry_and_is_raised(
        recording_store: Any) -> None:
    refusing = Refusing()
    retry = PhasePolicy(on_fail="retry", max_retries=3, retry_delay=0)
    pipeline = Pipeline("broken", Phase("a", partial(const, 1), policy=retry),
                        Phase("b", partial(const, 2), depends_on="a"),
                        Phase("c", partial(const, 3)))
    store, _ = recording_store(pipeline)
    with pytest.raises(ExecutorError, match="the cluster is gone"):
        pipeline.run(executor="r", executors=lookup(r=refusing), store=store, max_workers=1)
    assert refusing.submitted == ["a"]  # no retry, nothing after it
    state = store.state
    assert state.phase("a").status == "failed"
    assert state.phase("a").error == "executor 'cluster': the cluster is gone"
    assert reasons(state) == {"b": "not started: phase 'a' failed",
                              "c": "not started: phase 'a' failed"}
    assert state.status == "failed"


def test_an_executor_error_cancels_the_phases_running_elsewhere(recording_store: Any) -> None:
    release = threading.Event()
    runs = threading.Event()

    def slow() -> str:
        runs.set()
        release.wait(MEET_LIMIT)
        return "slow"

    class RefusingOnceItRuns(Refusing):
        def submit(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
            assert runs.wait(MEET_LIMIT)
            return super().submit(task, emit)

    pipeline = Pipeline("elsewhere", Phase("a", slow, parallel=True),
                        Phase("b", partial(const, 1), executor="r", parallel=True))
    store, _ = recording_store(pipeline)
    try:
        with pytest.raises(ExecutorError):
            pipeline.run(executor="t", store=store, max_workers=2,
                         executors=lookup(t=threads(2), r=RefusingOnceItRuns()))
    finally:
        release.set()
    assert reasons(store.state) == {"a": "cancelled: executor 'cluster': the cluster is gone"}


# ── handlers bound for another process ──────────────────────────────────────


def test_a_handler_that_cannot_be_pickled_fails_its_phase_before_anything_runs(
        recording_store: Any) -> None:
    lock = threading.Lock()
    crossing = Watched(InlineExecutor(), crosses_processes=True)
    pipeline = Pipeline("unsendable", Phase("first", partial(const, 1)),
                        Phase("locked", lambda: lock))
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor="x", executors=lookup(x=crossing), store=store)
    assert crossing.ledger.submits == []
    assert result.state.phase("locked").status == "failed"
    assert "cannot be sent to a worker" in result.state.phase("locked").error
    assert reasons(result.state) == {"first": "not started: phase 'locked' failed"}
    assert events(actions) == [("FAILED", "locked"), ("CANCELLED", "first")]


def test_a_run_on_an_executor_that_stays_here_pickles_nothing() -> None:
    lock = threading.Lock()
    result = Pipeline("local", Phase("locked", lambda: lock)).run(executor="inline")
    assert result.results["locked"] is lock


# ── results ─────────────────────────────────────────────────────────────────


def test_the_saga_fills_in_the_results_it_is_given_and_returns_them() -> None:
    pipeline = Pipeline("results", Phase("a", partial(const, 1)), Phase("b", boom))
    results: dict[str, Any] = {}
    run = PipelineRun(Plan(pipeline.phases, pipeline.execution_order()),
                      RunOptions(executor="inline"), results)
    returned = Store(pipeline.build_reducer()).run_saga(run.saga)
    assert returned is results
    assert results == {"a": 1}

