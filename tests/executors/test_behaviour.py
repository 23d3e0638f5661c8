"""One behavioural suite, run against every executor the plugin registry knows.

Executors registered later (by this package or an installed plugin) join for free: the
parameter list is read from the registry at collection time.

Handlers are module-level functions of this test module, bound to their arguments with
functools.partial, and cross a process boundary by reference, as a user's handlers in a
test module do: a worker unpickles them by importing this module, which it finds on the
import path it is given by the parent (``phasewise.core.bootstrap``). Phases coordinate
through files in ``tmp_path`` (a file exists or not, in any process), never through
timing; every wait is bounded.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasewise import Action, Phase, PhasePolicy, Pipeline, Store
from phasewise.core.actions import PHASE_RETRY
from phasewise.plugins.manager import executor_registry

pytestmark = pytest.mark.timeout(60)

EXECUTORS = executor_registry().names()
ONE_AT_A_TIME = {"inline"}  # executors that run a phase inside submit(), one at a time
WAIT_LIMIT = 10.0


def needs_concurrency(executor: str) -> None:
    if executor in ONE_AT_A_TIME:
        pytest.skip(f"the {executor} executor runs one phase at a time, inside submit()")


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    return request.param


# ── handlers (module level, so they pickle) ─────────────────────────────────


def _touch(path: str) -> None:
    Path(path).touch()


def _wait_for(path: str, limit: float = WAIT_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _record(log: str, text: str) -> None:
    """Append one line atomically (O_APPEND), from any thread or process."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def events(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def const(value: Any) -> Any:
    return value


def sleep_then(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def fail(message: str) -> None:
    raise ValueError(message)


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 for i in range(251)) * (size // 251) + b"z" * (size % 251)


class Columns:
    """Pickles (protocol 5) its columns as out-of-band buffers, as numpy arrays do."""

    def __init__(self, *columns: Any) -> None:
        self.columns = columns

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Columns, tuple(pickle.PickleBuffer(c) for c in self.columns)


def make_columns(*sizes: int) -> Columns:
    return Columns(*(bytearray(pattern(size, seed)) for seed, size in enumerate(sizes)))


def column_sums(context: dict[str, Any]) -> list[int]:
    return [sum(memoryview(c)) for c in context["columns"].columns]


def echo_context(context):
    return dict(context)


def span(log: str, name: str, pause: float = 0.01) -> str:
    _record(log, f"start {name}")
    time.sleep(pause)  # widen the window in which an overlap would show
    _record(log, f"end {name}")
    return name


def rendezvous(mine: str, other: str) -> bool:
    """Announce this phase, then wait for the other one: True only if both ran at once."""
    _touch(mine)
    return _wait_for(other)


def dataflow_b(flags: str) -> bool:
    _touch(os.path.join(flags, "b_started"))
    return os.path.exists(os.path.join(flags, "c_done"))


def dataflow_c(flags: str) -> bool:
    saw_b = _wait_for(os.path.join(flags, "b_started"))
    _touch(os.path.join(flags, "c_done"))
    return saw_b


def flaky(counter: str, fail_times: int) -> int:
    _record(counter, "attempt")
    attempt = len(Path(counter).read_text().splitlines())
    if attempt <= fail_times:
        raise OSError(f"attempt {attempt}")
    return attempt


def fail_after(wait: str, announce: str | None, message: str) -> None:
    _wait_for(wait)
    if announce:
        _touch(announce)
    raise RuntimeError(message)


def hang_until(started: str | None, release: str, limit: float = WAIT_LIMIT) -> str:
    if started:
        _touch(started)
    _wait_for(release, limit)
    return "finished"


def chatter(n: int) -> int:
    for i in range(n):
        print(f"out {i}")
        print(f"err {i}", file=sys.stderr)
    return n


def live_line(flag: str) -> bool:
    print("first", flush=True)
    seen = _wait_for(flag)
    print("second")
    return seen


def talk(mine: str | None, other: str | None, tag: str, n: int) -> None:
    if mine and other:
        _touch(mine)
        _wait_for(other)
    for i in range(n):
        print(f"{tag} {i}")
        if i % 20 == 0:
            time.sleep(0.001)  # let the other phase interleave


def count_to(n: int) -> None:
    for i in range(n):
        print(f"line {i}")


def passthrough(tag: str) -> str:
    print(f"stdout-{tag}", flush=True)
    print(f"stderr-{tag}", file=sys.stderr, flush=True)
    return tag


def where() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


# ── scheduling ──────────────────────────────────────────────────────────────


def test_a_phase_starts_as_soon_as_its_own_dependencies_are_done(
    executor: str, tmp_path: Path
) -> None:
    needs_concurrency(executor)
    flags = str(tmp_path)
    # a → b, and c independent: c waits until b has started, so a level-by-level
    # scheduler (b only after the whole first level, c included) would fail here
    pipeline = Pipeline(
        "dataflow",
        Phase("a", partial(const, "a"), parallel=True),
        Phase("b", partial(dataflow_b, flags), depends_on="a", parallel=True),
        Phase("c", partial(dataflow_c, flags), parallel=True),
    )
    result = pipeline.run(executor=executor, max_workers=4)
    assert result.ok, result.state
    assert result.results["c"] is True, "b did not start while c was running"
    assert result.results["b"] is False, "b started only after c had finished"


def test_parallel_phases_really_overlap(executor: str, tmp_path: Path) -> None:
    needs_concurrency(executor)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    pipeline = Pipeline(
        "overlap",
        Phase("one", partial(rendezvous, one, two), parallel=True),
        Phase("two", partial(rendezvous, two, one), parallel=True),
    )
    result = pipeline.run(executor=executor, max_workers=2)
    assert result.ok
    assert result.results == {"one": True, "two": True}


def _overlaps(log: Path) -> tuple[int, list[str]]:
    """(largest number of phases running at once, exclusive-phase violations)."""
    active: set[str] = set()
    most, problems = 0, []
    for kind, name in events(log):
        if kind == "start":
            if active and (name.startswith("x") or any(a.startswith("x") for a in active)):
                problems.append(f"{name} started while {sorted(active)} ran")
            active.add(name)
            most = max(most, len(active))
        else:
            active.discard(name)
    return most, problems


def test_exclusive_phases_never_overlap_anything(executor: str, tmp_path: Path) -> None:
    log = str(tmp_path / "events")
    par = partial(Phase, parallel=True)
    pipeline = Pipeline(
        "exclusive",
        par("p1", partial(span, log, "p1")),
        par("p2", partial(span, log, "p2")),
        Phase("x1", partial(span, log, "x1")),
        par("p3", partial(span, log, "p3")),
        par("p4", partial(span, log, "p4"), depends_on="x1"),
        Phase("x2", partial(span, log, "x2"), depends_on="p1"),
        par("p5", partial(span, log, "p5"), depends_on="p1"),
    )
    result = pipeline.run(executor=executor, max_workers=4)
    assert result.ok
    _, problems = _overlaps(tmp_path / "events")
    assert problems == []
    assert sorted(n for kind, n in events(tmp_path / "events") if kind == "start") == sorted(
        p.name for p in pipeline.phases
    )


def test_a_parallel_pipeline_makes_its_phases_parallel_unless_they_say_otherwise(
    executor: str, tmp_path: Path
) -> None:
    needs_concurrency(executor)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    log = str(tmp_path / "events")
    pipeline = Pipeline(
        "inherit",
        Phase("one", partial(rendezvous, one, two)),
        Phase("two", partial(rendezvous, two, one)),
        Phase("x_alone", partial(span, log, "x_alone"), parallel=False),
        Phase("p_after", partial(span, log, "p_after"), depends_on="one"),
        parallel=True,
    )
    assert [p.parallel for p in pipeline.phases] == [True, True, False, True]
    result = pipeline.run(executor=executor, max_workers=2)
    assert result.ok, result.state
    assert result.results["one"] is True and result.results["two"] is True
    assert _overlaps(tmp_path / "events")[1] == []


@pytest.mark.parametrize("limit", [1, 2])
def test_max_workers_limits_concurrency(executor: str, tmp_path: Path, limit: int) -> None:
    log = str(tmp_path / "events")
    pipeline = Pipeline(
        "limited",
        *(Phase(f"p{i}", partial(span, log, f"p{i}", 0.02), parallel=True) for i in range(6)),
    )
    result = pipeline.run(executor=executor, max_workers=limit)
    assert result.ok
    most, _ = _overlaps(tmp_path / "events")
    assert 1 <= most <= limit


# ── context and policies ────────────────────────────────────────────────────


def test_context_gets_dependency_results_and_none_for_a_skipped_one(executor: str) -> None:
    pipeline = Pipeline(
        "context",
        Phase("one", partial(const, 1)),
        Phase("skipped", partial(fail, "nope"), policy=PhasePolicy(on_fail="skip")),
        Phase("unrelated", partial(const, "u")),
        Phase("both", echo_context, depends_on=("one", "skipped")),
        Phase("plain", partial(const, "no context"), depends_on="both"),
    )
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    assert result.results["both"] == {"one": 1, "skipped": None}
    assert result.results["plain"] == "no context"
    skipped = result.state.phase("skipped")
    assert skipped.status == "skipped"
    assert skipped.error == "ValueError: nope"
    assert result.state.progress == pytest.approx(1.0)


def reads_a_missing_dependency(context):
    return context["hash_all"]


def test_a_context_miss_names_the_phase_its_context_and_the_fix(executor: str) -> None:
    pipeline = Pipeline(
        "miss",
        Phase("hash_all", partial(const, "h")),
        Phase("a", partial(const, 1), depends_on="hash_all"),
        Phase("report", reads_a_missing_dependency, depends_on="a"),
    )
    result = pipeline.run(executor=executor)
    error = result.state.phase("report").error
    assert error.startswith("MissingDependency: phase 'report' has no dependency 'hash_all'; "
                            "its context holds: a; add 'hash_all' to depends_on"), error
    assert "'hash_all' runs before it only as a dependency of its dependencies" in error


def raises_from_a_helper() -> None:
    _helper_that_raises()


def _helper_that_raises() -> None:
    raise LookupError("deep in the user's code")


def test_a_traceback_starts_at_the_handler_on_every_executor(executor: str) -> None:
    result = Pipeline("tb", Phase("broken", raises_from_a_helper)).run(executor=executor)
    traceback = result.state.phase("broken").traceback
    frames = [line.strip() for line in traceback.splitlines() if line.strip().startswith("File ")]
    assert frames, traceback
    assert frames[0].endswith("in raises_from_a_helper"), traceback
    assert frames[-1].endswith("in _helper_that_raises"), traceback
    assert all(__file__ in frame for frame in frames), traceback
    assert traceback.rstrip().endswith("LookupError: deep in the user's code")


def test_stop_fails_the_pipeline_and_unstarted_phases_end_cancelled(executor: str) -> None:
    pipeline = Pipeline(
        "stop",
        Phase("a_fails", partial(fail, "broken")),
        Phase("b_depends", partial(const, "b"), depends_on="a_fails"),
        Phase("z_later", partial(const, "z")),
    )
    result = pipeline.run(executor=executor)
    assert result.status == "failed"
    assert not result.ok
    state = result.state
    assert state.phase("a_fails").status == "failed"
    assert state.phase("a_fails").error == "ValueError: broken"
    assert state.phase("b_depends").status == "cancelled"
    assert state.phase("z_later").status == "cancelled"
    assert result.results == {}


def test_stop_keeps_phases_waiting_in_an_executors_queue_from_starting(
    executor: str, tmp_path: Path,
) -> None:
    # One worker: the executors that queue tasks hold the "q" phases while "a_fails" runs.
    # At most one of them can have begun before the failure is seen; the rest must not.
    pipeline = Pipeline(
        "stop_queued",
        Phase("a_fails", partial(fail, "broken"), parallel=True),
        *(Phase(f"q{i}", partial(sleep_then, 0.3, i), parallel=True) for i in range(4)),
    )
    result = pipeline.run(executor=executor, max_workers=1)
    assert result.status == "failed"
    statuses = [result.state.phase(f"q{i}").status for i in range(4)]
    assert statuses.count("cancelled") >= 3, statuses
    assert set(statuses) <= {"cancelled", "completed"}, statuses
    cancelled = [result.state.phase(f"q{i}") for i in range(4)
                 if result.state.phase(f"q{i}").status == "cancelled"]
    assert all(p.error == "not started: phase 'a_fails' failed" for p in cancelled), cancelled


@pytest.mark.parametrize("backoff", ["fixed", "exponential"])
def test_retry_tries_again_then_succeeds(
    executor: str, tmp_path: Path, recording_store, backoff: str
) -> None:
    counter = str(tmp_path / "attempts")
    pipeline = Pipeline("retry", Phase(
        "flaky", partial(flaky, counter, 2),
        policy=PhasePolicy(on_fail="retry", max_retries=3, retry_delay=0.01,
                           retry_backoff=backoff),
    ))
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor=executor, store=store)
    assert result.ok
    assert result.results == {"flaky": 3}
    assert result.state.phase("flaky").attempt == 3
    retries = [a.payload for a in actions if a.type == PHASE_RETRY]
    assert [r["attempt"] for r in retries] == [2, 3]
    assert [r["error"] for r in retries] == ["OSError: attempt 1", "OSError: attempt 2"]
    assert all(r["max_retries"] == 3 for r in retries)


def test_retry_exhausted_fails_as_stop(executor: str, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    pipeline = Pipeline(
        "retry",
        Phase("flaky", partial(flaky, str(counter), 99),
              policy=PhasePolicy(on_fail="retry", max_retries=2, retry_delay=0.01)),
        Phase("after", partial(const, 1), depends_on="flaky"),
    )
    result = pipeline.run(executor=executor)
    assert result.status == "failed"
    flaky_state = result.state.phase("flaky")
    assert flaky_state.status == "failed"
    assert flaky_state.attempt == 3
    assert flaky_state.error == "OSError: attempt 3"
    assert len(counter.read_text().splitlines()) == 3
    assert result.state.phase("after").status == "cancelled"


def test_fail_fast_cancels_running_siblings(executor: str, tmp_path: Path) -> None:
    needs_concurrency(executor)
    started, release = str(tmp_path / "slow_started"), str(tmp_path / "release")
    pipeline = Pipeline(
        "fail_fast",
        Phase("boom", partial(fail_after, started, None, "boom"), parallel=True),
        Phase("slow", partial(hang_until, started, release), parallel=True),
        Phase("after", partial(const, 1), depends_on="boom", parallel=True),
        fail_fast=True,
    )
    try:
        result = pipeline.run(executor=executor, max_workers=2)
    finally:
        _touch(release)  # let a thread that cannot be killed finish
    assert result.status == "failed"
    assert result.state.phase("boom").status == "failed"
    assert result.state.phase("slow").status == "cancelled"
    assert result.state.phase("after").status == "cancelled"
    assert "slow" not in result.results


def test_without_fail_fast_running_siblings_finish(executor: str, tmp_path: Path) -> None:
    needs_concurrency(executor)
    started, raising = str(tmp_path / "slow_started"), str(tmp_path / "boom_raising")
    pipeline = Pipeline(
        "finish",
        Phase("boom", partial(fail_after, started, raising, "boom"), parallel=True),
        Phase("slow", partial(hang_until, started, raising), parallel=True),
        Phase("after", partial(const, 1), depends_on="boom", parallel=True),
    )
    result = pipeline.run(executor=executor, max_workers=2)
    assert result.status == "failed"
    assert result.state.phase("slow").status == "completed"
    assert result.results == {"slow": "finished"}
    assert result.state.phase("after").status == "cancelled"


def test_timeout_fails_the_phase_saying_so(executor: str, tmp_path: Path) -> None:
    pipeline = Pipeline(
        "timeout",
        # waits at most 1 s: a thread cannot be killed, inline cannot be interrupted
        Phase("slow", partial(hang_until, None, str(tmp_path / "never"), 1.0), timeout=0.2),
        Phase("after", partial(const, 1), depends_on="slow"),
    )
    result = pipeline.run(executor=executor)
    assert result.status == "failed"
    slow = result.state.phase("slow")
    assert slow.status == "failed"
    assert "timed out after" in slow.error
    assert "slow" not in result.results
    assert result.state.phase("after").status == "cancelled"


# ── output ──────────────────────────────────────────────────────────────────


def _lines(state, phase: str, stream: str | None = None) -> list[str]:
    return [log.line for log in state.phase(phase).logs if stream in (None, log.stream)]


def test_captured_lines_arrive_in_order_per_stream_and_tagged(executor: str) -> None:
    pipeline = Pipeline("capture", Phase("talk", partial(chatter, 30), max_logs=1000),
                        capture_output=True)
    result = pipeline.run(executor=executor)
    assert result.ok
    assert _lines(result.state, "talk", "stdout") == [f"out {i}" for i in range(30)]
    assert _lines(result.state, "talk", "stderr") == [f"err {i}" for i in range(30)]
    assert len(result.state.phase("talk").logs) == 60


def test_capture_output_can_be_switched_on_per_run(executor: str) -> None:
    pipeline = Pipeline("capture", Phase("talk", partial(chatter, 2)))
    result = pipeline.run(executor=executor, capture_output=True)
    assert _lines(result.state, "talk", "stdout") == ["out 0", "out 1"]


def test_lines_reach_the_store_while_the_phase_runs(executor: str, tmp_path: Path) -> None:
    flag = str(tmp_path / "saw_first")
    pipeline = Pipeline("live", Phase("live", partial(live_line, flag)), capture_output=True)
    store = Store(pipeline.build_reducer())

    def listener() -> None:
        if "first" in _lines(store.state, "live"):
            _touch(flag)

    store.subscribe(listener)
    result = pipeline.run(executor=executor, store=store)
    assert result.ok
    assert result.results["live"] is True, "the first line reached the Store only at the end"
    assert _lines(result.state, "live") == ["first", "second"]


def test_parallel_phases_never_see_each_others_lines(executor: str, tmp_path: Path) -> None:
    together = executor not in ONE_AT_A_TIME
    a, b = (str(tmp_path / "a"), str(tmp_path / "b")) if together else (None, None)
    n = 200
    pipeline = Pipeline(
        "isolation",
        Phase("left", partial(talk, a, b, "left", n), parallel=True, max_logs=1000),
        Phase("right", partial(talk, b, a, "right", n), parallel=True, max_logs=1000),
        capture_output=True,
    )
    result = pipeline.run(executor=executor, max_workers=2)
    assert result.ok
    assert _lines(result.state, "left") == [f"left {i}" for i in range(n)]
    assert _lines(result.state, "right") == [f"right {i}" for i in range(n)]


def test_max_logs_keeps_the_newest_lines(executor: str) -> None:
    pipeline = Pipeline("ring", Phase("count", partial(count_to, 20), max_logs=5),
                        capture_output=True)
    result = pipeline.run(executor=executor)
    assert _lines(result.state, "count") == [f"line {i}" for i in range(15, 20)]


def test_without_capture_output_passes_through(executor: str, capfd) -> None:
    pipeline = Pipeline("loud", Phase("loud", partial(passthrough, executor)))
    result = pipeline.run(executor=executor)
    assert result.ok
    out, err = capfd.readouterr()
    assert f"stdout-{executor}" in out
    assert f"stderr-{executor}" in err
    assert result.state.phase("loud").logs == ()


# ── executors per phase, results ────────────────────────────────────────────


def test_a_phase_can_override_the_run_executor(executor: str) -> None:
    here = (os.getpid(), threading.get_ident())
    pipeline = Pipeline(
        "override",
        Phase("here", where, executor="inline"),
        Phase("default", where, depends_on="here"),
    )
    result = pipeline.run(executor=executor)
    assert result.ok
    assert tuple(result.results["here"]) == here
    if executor != "inline":
        assert tuple(result.results["default"]) != here


def test_a_phase_can_name_an_executor_other_than_the_run_one(executor: str) -> None:
    here = (os.getpid(), threading.get_ident())
    pipeline = Pipeline(
        "override",
        Phase("elsewhere", where, executor=executor),
        Phase("default", where, depends_on="elsewhere"),
    )
    result = pipeline.run(executor="inline")
    assert result.ok
    assert tuple(result.results["default"]) == here
    if executor != "inline":
        assert tuple(result.results["elsewhere"]) != here


def test_results_and_counts(executor: str) -> None:
    pipeline = Pipeline(
        "counts",
        Phase("a_ok", partial(const, "A")),
        Phase("b_skip", partial(fail, "skip me"), policy=PhasePolicy(on_fail="skip")),
        Phase("c_ok", partial(const, {"c": [1, 2]}), depends_on="b_skip"),
        Phase("d_fail", partial(fail, "stop here"), depends_on="c_ok"),
        Phase("e_after", partial(const, "E"), depends_on="d_fail"),
    )
    result = pipeline.run(executor=executor)
    assert result.status == "failed"
    assert result.results == {"a_ok": "A", "b_skip": None, "c_ok": {"c": [1, 2]}}
    assert result.counts == {"completed": 2, "skipped": 1, "failed": 1, "cancelled": 1}
    assert sum(result.counts.values()) == len(pipeline.phases)


# ── large results ───────────────────────────────────────────────────────────


def test_large_results_come_back_intact(executor: str) -> None:
    size = 5 << 20
    pipeline = Pipeline(
        "large",
        Phase("bytes", partial(pattern, size)),
        Phase("bytearray", partial(bytearray, size)),
        Phase("list", partial(const, [pattern(300_000, i) for i in range(3)])),
    )
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    assert result.results["bytes"] == pattern(size)
    assert result.results["bytearray"] == bytearray(size)
    assert type(result.results["bytearray"]) is bytearray
    assert result.results["list"] == [pattern(300_000, i) for i in range(3)]


def test_buffers_pickled_out_of_band_come_back_intact_and_writable(executor: str) -> None:
    sizes = (3 << 20, 0, 100, 70_000, 1 << 20)
    pipeline = Pipeline(
        "columns",
        Phase("columns", partial(make_columns, *sizes)),
        Phase("sums", column_sums, depends_on="columns"),  # and on, to another worker
    )
    result = pipeline.run(executor=executor)
    assert result.ok, result.state
    got = result.results["columns"]
    expected = make_columns(*sizes)
    assert [bytes(c) for c in got.columns] == [bytes(c) for c in expected.columns]
    assert result.results["sums"] == [sum(c) for c in expected.columns]
    for column in got.columns:
        view = memoryview(column)
        assert not view.readonly  # as the worker's were (a numpy array stays writable)
        if view.nbytes:
            view[0] = 255


# ── property: every phase exactly once, dependencies first ─────────────────


@st.composite
def dags(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...], bool]]:
    n = draw(st.integers(1, 7))
    phases = []
    for j in range(n):
        deps = draw(st.sets(st.integers(0, j - 1), max_size=3)) if j else set()
        phases.append((f"p{j}", tuple(f"p{i}" for i in sorted(deps)), draw(st.booleans())))
    return draw(st.permutations(phases))


@pytest.mark.parametrize("name", EXECUTORS)
@settings(max_examples=8)
@given(dag=dags())
def test_a_run_completes_every_phase_once_with_dependencies_first(name: str, dag) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "events")
        pipeline = Pipeline("random", *(
            Phase(p, partial(span, log, p, 0), depends_on=deps, parallel=par)
            for p, deps, par in dag
        ))
        result = pipeline.run(executor=name, max_workers=3)
        seen = events(Path(log))
    assert result.ok
    assert result.results == {p: p for p, _, _ in dag}
    position = {(kind, p): i for i, (kind, p) in enumerate(seen)}
    assert len(seen) == 2 * len(dag)  # each phase started and ended exactly once
    for p, deps, _ in dag:
        for d in deps:
            assert position[("end", d)] < position[("start", p)]


def test_the_suite_covers_the_built_in_executors() -> None:
    assert {"inline", "thread", "process", "subprocess"} <= set(EXECUTORS)


def test_recording_store_sees_the_run(recording_store) -> None:
    pipeline = Pipeline("rec", Phase("a", partial(const, 1)))
    store, actions = recording_store(pipeline)
    pipeline.run(executor="inline", store=store)
    assert [a.type for a in actions][:2] == ["@@INIT", "@@PIPELINE_START"]
    assert isinstance(actions[-1], Action)
