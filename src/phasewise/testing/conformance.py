"""The behavioural conformance suite: what every phasewise executor must do, tested by
running real pipelines on it end to end.

Import its tests into a test module of yours and override ``phasewise_executor`` (see
``phasewise.testing``), or run it with ``pytest -p phasewise.testing --pyargs
phasewise.testing.conformance --phasewise-executor NAME``. phasewise runs it against
each of its own executors.

What an executor must do to pass: the protocol of ``phasewise.executors.Executor``. In
short, tasks really run concurrently (unless the executor runs each inside ``submit``,
see ``ExecutorUnderTest.runs_inside_submit``), failures raise from the future with the
handler's traceback (``RemotePhaseError`` for one raised elsewhere), ``cancel()`` on a
running task's future ends it or lets it be abandoned, a queued task can be withdrawn,
captured lines are emitted while the task runs and before its future resolves, and
results of any size come back intact. The handlers are in ``phasewise.testing.handlers``.

One module past the house's ~400 lines on purpose: ``import *`` of it, or ``--pyargs``,
brings the whole suite. Its tests are short and grouped under banner comments.
"""

from __future__ import annotations

import importlib.util
import os
import random
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from phasewise import Action, Phase, PhasePolicy, Pipeline, Store
from phasewise.core.actions import PHASE_RETRY
from phasewise.testing import handlers as h
from phasewise.testing.target import ExecutorUnderTest

TIMEOUT = 60
"""Seconds each test may take, with pytest-timeout installed (every wait of the handlers
is bounded anyway)."""


# ── fixtures ────────────────────────────────────────────────────────────────


@pytest.fixture
def phasewise_executor(request: pytest.FixtureRequest) -> str | ExecutorUnderTest:
    """The executor under test: override this fixture to return an installed executor's
    name or an ``ExecutorUnderTest``, or pass ``--phasewise-executor NAME`` with
    ``-p phasewise.testing``."""
    param = getattr(request, "param", None)
    if param is None:
        pytest.fail("no executor to test: override the phasewise_executor fixture, or run "
                    "pytest -p phasewise.testing --phasewise-executor NAME", pytrace=False)
    return param


@pytest.fixture
def executor_under_test(phasewise_executor: str | ExecutorUnderTest) -> ExecutorUnderTest:
    """``phasewise_executor`` as an ``ExecutorUnderTest``."""
    return ExecutorUnderTest.of(phasewise_executor)


def needs_concurrency(executor: ExecutorUnderTest) -> None:
    if executor.one_at_a_time:
        pytest.skip(f"the {executor.name} executor runs one phase at a time, inside submit()")


def recording_store(pipeline: Pipeline) -> tuple[Store, list[Action]]:
    """A Store whose every action is recorded, in the order it reduced them."""
    inner = pipeline.build_reducer()
    seen: list[Action] = []

    def reducer(state: Any, action: Action) -> Any:
        seen.append(action)
        return inner(state, action)

    return Store(reducer), seen


# ── scheduling ──────────────────────────────────────────────────────────────


def test_a_phase_starts_as_soon_as_its_own_dependencies_are_done(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    needs_concurrency(executor_under_test)
    flags = str(tmp_path)
    # a → b, and c independent: c waits until b has started, so a level-by-level
    # scheduler (b only after the whole first level, c included) would fail here
    pipeline = Pipeline(
        "dataflow",
        Phase("a", partial(h.const, "a"), parallel=True),
        Phase("b", partial(h.dataflow_b, flags), depends_on=("a",), parallel=True),
        Phase("c", partial(h.dataflow_c, flags), parallel=True),
    )
    result = executor_under_test.run(pipeline, max_workers=4)
    assert result.ok, result.state
    assert result.results["c"] is True, "b did not start while c was running"
    assert result.results["b"] is False, "b started only after c had finished"


def test_parallel_phases_really_overlap(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    needs_concurrency(executor_under_test)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    pipeline = Pipeline(
        "overlap",
        Phase("one", partial(h.rendezvous, one, two), parallel=True),
        Phase("two", partial(h.rendezvous, two, one), parallel=True),
    )
    result = executor_under_test.run(pipeline, max_workers=2)
    assert result.ok
    assert result.results == {"one": True, "two": True}


def _overlaps(log: Path) -> tuple[int, list[str]]:
    """(largest number of phases running at once, exclusive-phase violations)."""
    active: set[str] = set()
    most, problems = 0, []
    for kind, name in h.events(log):
        if kind == "start":
            if active and (name.startswith("x") or any(a.startswith("x") for a in active)):
                problems.append(f"{name} started while {sorted(active)} ran")
            active.add(name)
            most = max(most, len(active))
        else:
            active.discard(name)
    return most, problems


def test_exclusive_phases_never_overlap_anything(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    log = str(tmp_path / "events")
    par = partial(Phase, parallel=True)
    pipeline = Pipeline(
        "exclusive",
        par("p1", partial(h.span, log, "p1")),
        par("p2", partial(h.span, log, "p2")),
        Phase("x1", partial(h.span, log, "x1")),
        par("p3", partial(h.span, log, "p3")),
        par("p4", partial(h.span, log, "p4"), depends_on=("x1",)),
        Phase("x2", partial(h.span, log, "x2"), depends_on=("p1",)),
        par("p5", partial(h.span, log, "p5"), depends_on=("p1",)),
    )
    result = executor_under_test.run(pipeline, max_workers=4)
    assert result.ok
    _, problems = _overlaps(tmp_path / "events")
    assert problems == []
    assert sorted(n for kind, n in h.events(tmp_path / "events") if kind == "start") == sorted(
        p.name for p in pipeline.phases
    )


def test_a_parallel_pipeline_makes_its_phases_parallel_unless_they_say_otherwise(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    needs_concurrency(executor_under_test)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    log = str(tmp_path / "events")
    pipeline = Pipeline(
        "inherit",
        Phase("one", partial(h.rendezvous, one, two)),
        Phase("two", partial(h.rendezvous, two, one)),
        Phase("x_alone", partial(h.span, log, "x_alone"), parallel=False),
        Phase("p_after", partial(h.span, log, "p_after"), depends_on=("one",)),
        parallel=True,
    )
    assert [p.parallel for p in pipeline.phases] == [True, True, False, True]
    result = executor_under_test.run(pipeline, max_workers=2)
    assert result.ok, result.state
    assert result.results["one"] is True and result.results["two"] is True
    assert _overlaps(tmp_path / "events")[1] == []


@pytest.mark.parametrize("limit", [1, 2])
def test_max_workers_limits_concurrency(
    executor_under_test: ExecutorUnderTest, tmp_path: Path, limit: int
) -> None:
    log = str(tmp_path / "events")
    pipeline = Pipeline(
        "limited",
        *(Phase(f"p{i}", partial(h.span, log, f"p{i}", 0.02), parallel=True) for i in range(6)),
    )
    result = executor_under_test.run(pipeline, max_workers=limit)
    assert result.ok
    most, _ = _overlaps(tmp_path / "events")
    assert 1 <= most <= limit


# ── context and policies ────────────────────────────────────────────────────


def test_context_gets_dependency_results_and_none_for_a_skipped_one(
    executor_under_test: ExecutorUnderTest,
) -> None:
    pipeline = Pipeline(
        "context",
        Phase("one", partial(h.const, 1)),
        Phase("skipped", partial(h.fail, "nope"), policy=PhasePolicy(on_fail="skip")),
        Phase("unrelated", partial(h.const, "u")),
        Phase("both", h.echo_context, depends_on=("one", "skipped")),
        Phase("plain", partial(h.const, "no context"), depends_on=("both",)),
    )
    result = executor_under_test.run(pipeline)
    assert result.ok, result.state
    assert result.results["both"] == {"one": 1, "skipped": None}
    assert result.results["plain"] == "no context"
    skipped = result.state.phase("skipped")
    assert skipped.status == "skipped"
    assert skipped.error == "ValueError: nope"
    assert result.state.progress == pytest.approx(1.0)


def test_a_context_miss_names_the_phase_its_context_and_the_fix(
    executor_under_test: ExecutorUnderTest,
) -> None:
    pipeline = Pipeline(
        "miss",
        Phase("hash_all", partial(h.const, "h")),
        Phase("a", partial(h.const, 1), depends_on=("hash_all",)),
        Phase("report", h.reads_a_missing_dependency, depends_on=("a",)),
    )
    result = executor_under_test.run(pipeline)
    error = result.state.phase("report").error
    assert error.startswith("MissingDependency: phase 'report' has no dependency 'hash_all'; "
                            "its context holds: a; add 'hash_all' to depends_on"), error
    assert "'hash_all' runs before it only as a dependency of its dependencies" in error


def test_a_traceback_starts_at_the_handler_on_every_executor(
    executor_under_test: ExecutorUnderTest,
) -> None:
    result = executor_under_test.run(Pipeline("tb", Phase("broken", h.raises_from_a_helper)))
    traceback = result.state.phase("broken").traceback
    frames = [line.strip() for line in traceback.splitlines() if line.strip().startswith("File ")]
    assert frames, traceback
    assert frames[0].endswith("in raises_from_a_helper"), traceback
    assert frames[-1].endswith("in _helper_that_raises"), traceback
    assert all(h.__file__ in frame for frame in frames), traceback
    assert traceback.rstrip().endswith("LookupError: deep in the user's code")


def test_stop_fails_the_pipeline_and_unstarted_phases_end_cancelled(
    executor_under_test: ExecutorUnderTest,
) -> None:
    pipeline = Pipeline(
        "stop",
        Phase("a_fails", partial(h.fail, "broken")),
        Phase("b_depends", partial(h.const, "b"), depends_on=("a_fails",)),
        Phase("z_later", partial(h.const, "z")),
    )
    result = executor_under_test.run(pipeline)
    assert result.status == "failed"
    assert not result.ok
    state = result.state
    assert state.phase("a_fails").status == "failed"
    assert state.phase("a_fails").error == "ValueError: broken"
    assert state.phase("b_depends").status == "cancelled"
    assert state.phase("z_later").status == "cancelled"
    assert result.results == {}


def test_stop_keeps_phases_waiting_in_an_executors_queue_from_starting(
    executor_under_test: ExecutorUnderTest,
) -> None:
    # One worker: the executors that queue tasks hold the "q" phases while "a_fails" runs.
    # At most one of them can have begun before the failure is seen; the rest must not.
    pipeline = Pipeline(
        "stop_queued",
        Phase("a_fails", partial(h.fail, "broken"), parallel=True),
        *(Phase(f"q{i}", partial(h.sleep_then, 0.3, i), parallel=True) for i in range(4)),
    )
    result = executor_under_test.run(pipeline, max_workers=1)
    assert result.status == "failed"
    statuses = [result.state.phase(f"q{i}").status for i in range(4)]
    assert statuses.count("cancelled") >= 3, statuses
    assert set(statuses) <= {"cancelled", "completed"}, statuses
    cancelled = [result.state.phase(f"q{i}") for i in range(4)
                 if result.state.phase(f"q{i}").status == "cancelled"]
    assert all(p.error == "not started: phase 'a_fails' failed" for p in cancelled), cancelled


@pytest.mark.parametrize("backoff", ["fixed", "exponential"])
def test_retry_tries_again_then_succeeds(
    executor_under_test: ExecutorUnderTest, tmp_path: Path, backoff: str
) -> None:
    counter = str(tmp_path / "attempts")
    pipeline = Pipeline("retry", Phase(
        "flaky", partial(h.flaky, counter, 2),
        policy=PhasePolicy(on_fail="retry", max_retries=3, retry_delay=0.01,
                           retry_backoff=backoff),
    ))
    store, actions = recording_store(pipeline)
    result = executor_under_test.run(pipeline, store=store)
    assert result.ok
    assert result.results == {"flaky": 3}
    assert result.state.phase("flaky").attempt == 3
    retries = [a.payload for a in actions if a.type == PHASE_RETRY]
    assert [r["attempt"] for r in retries] == [2, 3]
    assert [r["error"] for r in retries] == ["OSError: attempt 1", "OSError: attempt 2"]
    assert all(r["max_retries"] == 3 for r in retries)


def test_retry_exhausted_fails_as_stop(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    counter = tmp_path / "attempts"
    pipeline = Pipeline(
        "retry",
        Phase("flaky", partial(h.flaky, str(counter), 99),
              policy=PhasePolicy(on_fail="retry", max_retries=2, retry_delay=0.01)),
        Phase("after", partial(h.const, 1), depends_on=("flaky",)),
    )
    result = executor_under_test.run(pipeline)
    assert result.status == "failed"
    flaky_state = result.state.phase("flaky")
    assert flaky_state.status == "failed"
    assert flaky_state.attempt == 3
    assert flaky_state.error == "OSError: attempt 3"
    assert len(counter.read_text().splitlines()) == 3
    assert result.state.phase("after").status == "cancelled"


def test_fail_fast_cancels_running_siblings(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    needs_concurrency(executor_under_test)
    started, release = str(tmp_path / "slow_started"), str(tmp_path / "release")
    pipeline = Pipeline(
        "fail_fast",
        Phase("boom", partial(h.fail_after, started, None, "boom"), parallel=True),
        Phase("slow", partial(h.hang_until, started, release), parallel=True),
        Phase("after", partial(h.const, 1), depends_on=("boom",), parallel=True),
        fail_fast=True,
    )
    try:
        result = executor_under_test.run(pipeline, max_workers=2)
    finally:
        h.touch(release)  # let a thread that cannot be killed finish
    assert result.status == "failed"
    assert result.state.phase("boom").status == "failed"
    assert result.state.phase("slow").status == "cancelled"
    assert result.state.phase("after").status == "cancelled"
    assert "slow" not in result.results


def test_without_fail_fast_running_siblings_finish(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    needs_concurrency(executor_under_test)
    started, raising = str(tmp_path / "slow_started"), str(tmp_path / "boom_raising")
    pipeline = Pipeline(
        "finish",
        Phase("boom", partial(h.fail_after, started, raising, "boom"), parallel=True),
        Phase("slow", partial(h.hang_until, started, raising), parallel=True),
        Phase("after", partial(h.const, 1), depends_on=("boom",), parallel=True),
    )
    result = executor_under_test.run(pipeline, max_workers=2)
    assert result.status == "failed"
    assert result.state.phase("slow").status == "completed"
    assert result.results == {"slow": "finished"}
    assert result.state.phase("after").status == "cancelled"


def test_timeout_fails_the_phase_saying_so(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    pipeline = Pipeline(
        "timeout",
        # waits at most 1 s: a thread cannot be killed, inline cannot be interrupted
        Phase("slow", partial(h.hang_until, None, str(tmp_path / "never"), 1.0), timeout=0.2),
        Phase("after", partial(h.const, 1), depends_on=("slow",)),
    )
    result = executor_under_test.run(pipeline)
    assert result.status == "failed"
    slow = result.state.phase("slow")
    assert slow.status == "failed"
    assert "timed out after" in slow.error
    assert "slow" not in result.results
    assert result.state.phase("after").status == "cancelled"


# ── output ──────────────────────────────────────────────────────────────────


def _lines(state: Any, phase: str, stream: str | None = None) -> list[str]:
    return [log.line for log in state.phase(phase).logs if stream in (None, log.stream)]


def test_captured_lines_arrive_in_order_per_stream_and_tagged(
    executor_under_test: ExecutorUnderTest,
) -> None:
    pipeline = Pipeline("capture", Phase("talk", partial(h.chatter, 30), max_logs=1000),
                        capture_output=True)
    result = executor_under_test.run(pipeline)
    assert result.ok
    assert _lines(result.state, "talk", "stdout") == [f"out {i}" for i in range(30)]
    assert _lines(result.state, "talk", "stderr") == [f"err {i}" for i in range(30)]
    assert len(result.state.phase("talk").logs) == 60


def test_capture_output_can_be_switched_on_per_run(
    executor_under_test: ExecutorUnderTest,
) -> None:
    pipeline = Pipeline("capture", Phase("talk", partial(h.chatter, 2)))
    result = executor_under_test.run(pipeline, capture_output=True)
    assert _lines(result.state, "talk", "stdout") == ["out 0", "out 1"]


def test_lines_reach_the_store_while_the_phase_runs(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    flag = str(tmp_path / "saw_first")
    pipeline = Pipeline("live", Phase("live", partial(h.live_line, flag)), capture_output=True)
    store = Store(pipeline.build_reducer())

    def listener() -> None:
        if "first" in _lines(store.state, "live"):
            h.touch(flag)

    store.subscribe(listener)
    result = executor_under_test.run(pipeline, store=store)
    assert result.ok
    assert result.results["live"] is True, "the first line reached the Store only at the end"
    assert _lines(result.state, "live") == ["first", "second"]


def test_parallel_phases_never_see_each_others_lines(
    executor_under_test: ExecutorUnderTest, tmp_path: Path
) -> None:
    together = not executor_under_test.one_at_a_time
    a, b = (str(tmp_path / "a"), str(tmp_path / "b")) if together else (None, None)
    n = 200
    pipeline = Pipeline(
        "isolation",
        Phase("left", partial(h.talk, a, b, "left", n), parallel=True, max_logs=1000),
        Phase("right", partial(h.talk, b, a, "right", n), parallel=True, max_logs=1000),
        capture_output=True,
    )
    result = executor_under_test.run(pipeline, max_workers=2)
    assert result.ok
    assert _lines(result.state, "left") == [f"left {i}" for i in range(n)]
    assert _lines(result.state, "right") == [f"right {i}" for i in range(n)]


def test_max_logs_keeps_the_newest_lines(executor_under_test: ExecutorUnderTest) -> None:
    pipeline = Pipeline("ring", Phase("count", partial(h.count_to, 20), max_logs=5),
                        capture_output=True)
    result = executor_under_test.run(pipeline)
    assert _lines(result.state, "count") == [f"line {i}" for i in range(15, 20)]


def test_without_capture_output_passes_through(
    executor_under_test: ExecutorUnderTest, capfd: pytest.CaptureFixture[str]
) -> None:
    tag = executor_under_test.name
    pipeline = Pipeline("loud", Phase("loud", partial(h.passthrough, tag)))
    result = executor_under_test.run(pipeline)
    assert result.ok
    out, err = capfd.readouterr()
    assert f"stdout-{tag}" in out
    assert f"stderr-{tag}" in err
    assert result.state.phase("loud").logs == ()


# ── executors per phase, results ────────────────────────────────────────────


def test_a_phase_can_override_the_run_executor(executor_under_test: ExecutorUnderTest) -> None:
    here = (os.getpid(), threading.get_ident())
    pipeline = Pipeline(
        "override",
        Phase("here", h.where, executor="inline"),
        Phase("default", h.where, depends_on=("here",)),
    )
    result = executor_under_test.run(pipeline)
    assert result.ok
    assert tuple(result.results["here"]) == here
    if not executor_under_test.one_at_a_time:
        assert tuple(result.results["default"]) != here


def test_a_phase_can_name_an_executor_other_than_the_run_one(
    executor_under_test: ExecutorUnderTest,
) -> None:
    here = (os.getpid(), threading.get_ident())
    pipeline = Pipeline(
        "override",
        Phase("elsewhere", h.where, executor=executor_under_test.name),
        Phase("default", h.where, depends_on=("elsewhere",)),
    )
    result = executor_under_test.run(pipeline, executor="inline")
    assert result.ok
    assert tuple(result.results["default"]) == here
    if not executor_under_test.one_at_a_time:
        assert tuple(result.results["elsewhere"]) != here


def test_results_and_counts(executor_under_test: ExecutorUnderTest) -> None:
    pipeline = Pipeline(
        "counts",
        Phase("a_ok", partial(h.const, "A")),
        Phase("b_skip", partial(h.fail, "skip me"), policy=PhasePolicy(on_fail="skip")),
        Phase("c_ok", partial(h.const, {"c": [1, 2]}), depends_on=("b_skip",)),
        Phase("d_fail", partial(h.fail, "stop here"), depends_on=("c_ok",)),
        Phase("e_after", partial(h.const, "E"), depends_on=("d_fail",)),
    )
    result = executor_under_test.run(pipeline)
    assert result.status == "failed"
    assert result.results == {"a_ok": "A", "b_skip": None, "c_ok": {"c": [1, 2]}}
    assert result.counts == {"completed": 2, "skipped": 1, "failed": 1, "cancelled": 1}
    assert sum(result.counts.values()) == len(pipeline.phases)


# ── large results ───────────────────────────────────────────────────────────


def test_large_results_come_back_intact(executor_under_test: ExecutorUnderTest) -> None:
    size = 5 << 20
    pipeline = Pipeline(
        "large",
        Phase("bytes", partial(h.pattern, size)),
        Phase("bytearray", partial(bytearray, size)),
        Phase("list", partial(h.const, [h.pattern(300_000, i) for i in range(3)])),
    )
    result = executor_under_test.run(pipeline)
    assert result.ok, result.state
    assert result.results["bytes"] == h.pattern(size)
    assert result.results["bytearray"] == bytearray(size)
    assert type(result.results["bytearray"]) is bytearray
    assert result.results["list"] == [h.pattern(300_000, i) for i in range(3)]


def test_buffers_pickled_out_of_band_come_back_intact_and_writable(
    executor_under_test: ExecutorUnderTest,
) -> None:
    sizes = (3 << 20, 0, 100, 70_000, 1 << 20)
    pipeline = Pipeline(
        "columns",
        Phase("columns", partial(h.make_columns, *sizes)),
        Phase("sums", h.column_sums, depends_on=("columns",)),  # and on, to another worker
    )
    result = executor_under_test.run(pipeline)
    assert result.ok, result.state
    got = result.results["columns"]
    expected = h.make_columns(*sizes)
    assert [bytes(c) for c in got.columns] == [bytes(c) for c in expected.columns]
    assert result.results["sums"] == [sum(c) for c in expected.columns]
    for column in got.columns:
        view = memoryview(column)
        assert not view.readonly  # as the worker's were (a numpy array stays writable)
        if view.nbytes:
            view[0] = 255


# ── every phase exactly once, dependencies first, over random graphs ────────


def random_dag(seed: int) -> list[tuple[str, tuple[str, ...], bool]]:
    """A pipeline's shape, drawn from ``seed``: up to 7 phases (name, dependencies,
    parallel), each depending on up to 3 earlier ones, in shuffled order."""
    rng = random.Random(seed)
    phases = []
    for j in range(rng.randint(1, 7)):
        deps = sorted(rng.sample(range(j), rng.randint(0, min(3, j))))
        phases.append((f"p{j}", tuple(f"p{i}" for i in deps), rng.random() < 0.5))
    rng.shuffle(phases)
    return phases


@pytest.mark.parametrize("seed", range(8))
def test_a_run_completes_every_phase_once_with_dependencies_first(
    executor_under_test: ExecutorUnderTest, seed: int
) -> None:
    dag = random_dag(seed)
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "events")
        pipeline = Pipeline("random", *(
            Phase(p, partial(h.span, log, p, 0), depends_on=deps, parallel=par)
            for p, deps, par in dag
        ))
        result = executor_under_test.run(pipeline, max_workers=3)
        seen = h.events(Path(log))
    assert result.ok
    assert result.results == {p: p for p, _, _ in dag}
    position = {(kind, p): i for i, (kind, p) in enumerate(seen)}
    assert len(seen) == 2 * len(dag)  # each phase started and ended exactly once
    for p, deps, _ in dag:
        for d in deps:
            assert position[("end", d)] < position[("start", p)]


_TESTS = sorted(name for name, value in list(globals().items())
                if name.startswith("test_") and callable(value))

if importlib.util.find_spec("pytest_timeout") is not None:
    for _name in _TESTS:  # marked one by one: the marks go with the tests when imported
        globals()[_name] = pytest.mark.timeout(TIMEOUT)(globals()[_name])

__all__ = sorted(  # what `from phasewise.testing.conformance import *` brings
    [*_TESTS, "executor_under_test", "phasewise_executor"]
)
