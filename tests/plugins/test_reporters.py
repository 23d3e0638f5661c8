"""The built-in reporters' progress lines and summary, on recorded actions."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from phasewise import Action, Phase, Pipeline, Store
from phasewise.core import actions as A
from phasewise.plugins.reporters import (
    ProgressReporter,
    attempts,
    format_summary,
    short_duration,
)


def _noop() -> None:
    pass


PIPELINE = Pipeline("r", Phase("a", _noop), Phase("b", _noop, depends_on=("a",)))


def _reporting_store(show_logs: bool = True) -> tuple[Store, ProgressReporter, io.StringIO]:
    out = io.StringIO()
    reporter = ProgressReporter(out, show_logs=show_logs)
    store = Store(PIPELINE.build_reducer())
    reporter.attach(store)
    return store, reporter, out


def _messages(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_one_line_per_transition_and_per_log_line() -> None:
    store, _, out = _reporting_store()
    for action in (
        Action(A.PIPELINE_START, 1.0),
        Action(A.PHASE_START, {"name": "a", "attempt": 1, "timestamp": 1.0}),
        Action(A.PHASE_LOG, {"name": "a", "line": "out line", "stream": "stdout"}),
        Action(A.PHASE_LOG, {"name": "a", "line": "err line", "stream": "stderr"}),
        Action(A.PHASE_RETRY, {"name": "a", "attempt": 2, "error": "E: x", "max_retries": 2,
                               "timestamp": 1.5}),
        Action(A.PHASE_START, {"name": "a", "attempt": 2, "timestamp": 2.0}),
        Action(A.PHASE_COMPLETE, {"name": "a", "result": 7, "timestamp": 2.25}),
        Action(A.PHASE_FAILED, {"name": "b", "error": "ValueError: no", "timestamp": 2.5}),
        Action(A.PIPELINE_COMPLETE, {"timestamp": 3.0}),
    ):
        store.dispatch(action)
    assert _messages(out) == [
        "[1/2] a...",
        "a | out line",
        "a ! err line",
        "[RETRY] a: E: x; attempt 2 of 3 follows",
        "[1/2] a... (attempt 2)",  # the same phase: the same number
        "[FAIL] b: ValueError: no",
    ]


def test_start_lines_count_started_phases_and_show_labels() -> None:
    pipeline = Pipeline("l", Phase("pre", _noop, label="Preprocessing"),
                        Phase("post", _noop, depends_on="pre"))
    out = io.StringIO()
    store = Store(pipeline.build_reducer())
    ProgressReporter(out, labels={p.name: p.label for p in pipeline.phases}).attach(store)
    store.dispatch(Action(A.PHASE_START, {"name": "post", "attempt": 1}))
    store.dispatch(Action(A.PHASE_COMPLETE, {"name": "pre", "result": 1, "cached": True}))
    assert _messages(out) == ["[1/2] post...", "[2/2] Preprocessing... cached"]


def test_quiet_writes_nothing() -> None:
    out = io.StringIO()
    store = Store(PIPELINE.build_reducer())
    reporter = ProgressReporter(out, opening=("phasewise: running 'r'",), quiet=True)
    reporter.attach(store)
    store.dispatch(Action(A.PIPELINE_START, 1.0))
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 1}))
    store.dispatch(Action(A.PHASE_LOG, {"name": "a", "line": "x", "stream": "stdout"}))
    store.dispatch(Action(A.PHASE_FAILED, {"name": "a", "error": "E"}))
    assert out.getvalue() == ""


def test_resumed_phases_are_noted() -> None:
    store, reporter, out = _reporting_store()
    store.dispatch(Action(A.PHASE_COMPLETE, {"name": "a", "result": 1, "resumed": True}))
    assert reporter.resumed == {"a"}
    assert _messages(out) == ["[1/2] a... kept from the last run"]


def test_logs_hidden_when_not_capturing_and_unknown_phases_ignored() -> None:
    store, _, out = _reporting_store(show_logs=False)
    store.dispatch(Action(A.PHASE_LOG, {"name": "a", "line": "x", "stream": "stdout"}))
    with contextlib.suppress(ValueError):  # the reducer may refuse a phase it does not know
        store.dispatch(Action(A.PHASE_START, {"name": "ghost", "attempt": 1}))
    store.dispatch(Action(A.PHASE_LOG, {"name": "a", "line": "warning: thin", "stream": "stderr"}))
    store.dispatch(Action(A.PHASE_START, {"name": "b", "attempt": 1}))
    store.dispatch(Action(A.PHASE_SKIPPED, {"name": "b", "error": "KeyError: k"}))
    store.dispatch(Action(A.PHASE_CANCELLED, {"name": "a", "reason": "not started"}))
    # phasewise's own warnings are shown even without capture; a cancelled phase that
    # never started has no line (the summary lists it)
    assert _messages(out) == ["a ! warning: thin", "[1/2] b...", "[SKIP] b: KeyError: k"]


def test_a_phase_action_may_carry_the_name_alone() -> None:
    store, _, out = _reporting_store()
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 1}))
    try:
        store.dispatch(Action(A.PHASE_COMPLETE, "a"))
    except (TypeError, ValueError, AttributeError):
        pytest.skip("this reducer takes dict payloads only")
    assert _messages(out) == ["[1/2] a..."]  # a completion adds no line
    assert store.state.phase("a").status == "completed"


def test_dispatch_from_an_earlier_listener_loses_and_repeats_nothing() -> None:
    out = io.StringIO()
    reporter = ProgressReporter(out)
    store = Store(PIPELINE.build_reducer())

    def chain() -> None:  # subscribed before the reporter; dispatches from inside itself
        state = store.state
        if state.phase("a").status == "running" and state.phase("b").status == "pending":
            store.dispatch(Action(A.PHASE_START, {"name": "b", "attempt": 1}))

    store.subscribe(chain)
    reporter.attach(store)
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 1}))
    # the nested dispatch is reported first, inside the outer one: each exactly once
    assert _messages(out) == ["[1/2] b...", "[2/2] a..."]  # numbered as written


def test_summary_has_a_row_per_phase_and_failed_tracebacks() -> None:
    reducer = PIPELINE.build_reducer()
    state = reducer(None, Action(A.INIT))
    for action in (
        Action(A.PIPELINE_START, 10.0),
        Action(A.PHASE_START, {"name": "a", "attempt": 1, "timestamp": 10.0}),
        Action(A.PHASE_FAILED, {"name": "a", "error": "ValueError: bad\nsecond line",
                                "traceback": "Traceback (most recent call last):\n  boom\n",
                                "timestamp": 11.5}),
        Action(A.PHASE_CANCELLED, {"name": "b", "reason": "not started", "timestamp": 11.5}),
        Action(A.PIPELINE_COMPLETE, {"timestamp": 12.0}),
    ):
        state = reducer(state, action)
    text = format_summary(state)
    assert text.startswith("pipeline 'r' failed in 2.00s (1 failed, 1 cancelled)")
    lines = text.splitlines()
    assert "  [FAIL]      a  (1.5s)  ValueError: bad" in lines  # names padded to a column
    assert "  [CANCELLED] b  not started" in lines  # it never started: no duration
    assert "phase 'a' failed: ValueError: bad" in text
    assert "Traceback (most recent call last):\n  boom" in text
    assert "interrupted" in format_summary(state, interrupted=True).splitlines()[0]


def test_the_run_starts_with_the_opening_lines() -> None:
    out = io.StringIO()
    store = Store(PIPELINE.build_reducer())
    ProgressReporter(out, opening=("phasewise: running 'r'", "a warning")).attach(store)
    assert out.getvalue() == ""  # nothing before the run starts
    store.dispatch(Action(A.PIPELINE_START, 1.0))
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 1}))
    store.dispatch(Action(A.PIPELINE_START, 2.0))  # written once
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["phasewise: running 'r'", "a warning"]
    assert lines[2:] == ["[1/2] a..."]


def _cancelled_run(reducer: Any) -> Any:
    state = reducer(None, Action(A.INIT))
    for action in (
        Action(A.PIPELINE_START, 10.0),
        Action(A.PHASE_START, {"name": "a", "attempt": 1, "timestamp": 10.0}),
        Action(A.PHASE_RETRY, {"name": "a", "attempt": 2, "error": "E", "timestamp": 10.5}),
        Action(A.PHASE_START, {"name": "a", "attempt": 2, "timestamp": 10.6}),
        Action(A.PHASE_CANCELLED, {"name": "a", "reason": "interrupted", "timestamp": 11.0}),
        Action(A.PHASE_CANCELLED, {"name": "b", "reason": "not started", "timestamp": 11.0}),
        Action(A.PIPELINE_COMPLETE, {"timestamp": 11.0}),
    ):
        state = reducer(state, action)
    return state


def test_attempts_count_the_starts() -> None:
    state = _cancelled_run(PIPELINE.build_reducer())
    assert attempts(state.phase("a")) == 2  # cancelled while running: it did start
    assert attempts(state.phase("b")) == 0
    assert state.phase("b").attempt == 1  # PhaseStatus keeps its default
    fresh = PIPELINE.build_reducer()(None, Action(A.INIT))
    assert [attempts(p) for p in fresh.phases] == [0, 0]


def _summary_names(text: str) -> list[str]:
    """The phase names of a summary's ``  [TAG] name ...`` lines."""
    return [line.split()[1] for line in text.splitlines() if line.startswith("  [")]


def test_summary_follows_the_order_it_is_given() -> None:
    pipeline = Pipeline("o", Phase("z", _noop), Phase("m", _noop), Phase("a", _noop))
    state = pipeline.build_reducer()(None, Action(A.INIT))
    declared = format_summary(state)
    assert _summary_names(declared) == ["z", "m", "a"]
    assert "execution order" not in declared
    ordered = format_summary(state, pipeline.execution_order())
    assert _summary_names(ordered) == ["a", "m", "z"]
    assert ordered.splitlines()[0].endswith("; phases in execution order")


def _run_state(pipeline: Pipeline, actions: list[Action]) -> Any:
    reducer = pipeline.build_reducer()
    state = reducer(None, Action(A.INIT))
    for action in actions:
        state = reducer(state, action)
    return state


def test_summary_marks_every_outcome_and_shows_warnings_under_their_phase() -> None:
    pipeline = Pipeline("s", Phase("ok", _noop), Phase("cached", _noop),
                        Phase("skipped", _noop), Phase("when", _noop), Phase("retried", _noop),
                        Phase("kept", _noop))
    state = _run_state(pipeline, [
        Action(A.PIPELINE_START, 1.0),
        Action(A.PHASE_START, {"name": "ok", "attempt": 1, "timestamp": 1.0}),
        Action(A.PHASE_LOG, {"name": "ok", "line": "warning: 3 pages lack a title",
                             "stream": "stderr"}),
        Action(A.PHASE_LOG, {"name": "ok", "line": "warning: not ours", "stream": "stdout"}),
        Action(A.PHASE_COMPLETE, {"name": "ok", "result": 1, "timestamp": 2.25}),
        Action(A.PHASE_COMPLETE, {"name": "cached", "result": 1, "cached": True,
                                  "timestamp": 2.3}),
        Action(A.PHASE_START, {"name": "skipped", "attempt": 1, "timestamp": 2.3}),
        Action(A.PHASE_SKIPPED, {"name": "skipped", "error": "KeyError: 'k'",
                                 "timestamp": 2.4}),
        Action(A.PHASE_SKIPPED, {"name": "when", "error": "condition not met",
                                 "timestamp": 2.4}),
        Action(A.PHASE_START, {"name": "retried", "attempt": 1, "timestamp": 2.4}),
        Action(A.PHASE_RETRY, {"name": "retried", "attempt": 2, "error": "E",
                               "timestamp": 2.5}),
        Action(A.PHASE_START, {"name": "retried", "attempt": 2, "timestamp": 2.5}),
        Action(A.PHASE_COMPLETE, {"name": "retried", "result": 1, "timestamp": 2.6}),
        Action(A.PHASE_COMPLETE, {"name": "kept", "result": 1, "resumed": True,
                                  "timestamp": 2.6}),
        Action(A.PIPELINE_COMPLETE, {"timestamp": 3.0}),
    ])
    lines = format_summary(state, resumed={"kept"}).splitlines()
    assert lines[2:] == [
        "  [OK]     ok       (1.2s)",
        "           warning: 3 pages lack a title",
        "  [CACHED] cached   (0.00s)",
        "  [SKIP]   skipped  (0.10s)  KeyError: 'k'",
        "  [SKIP]   when     condition not met",
        "  [OK]     retried  (0.10s, 2 attempts)",
        "  [OK]     kept     (kept from the last run)",
    ]


def test_failures_only_keeps_the_failed_phases_and_their_tracebacks() -> None:
    state = _run_state(PIPELINE, [
        Action(A.PIPELINE_START, 1.0),
        Action(A.PHASE_START, {"name": "a", "attempt": 1, "timestamp": 1.0}),
        Action(A.PHASE_COMPLETE, {"name": "a", "result": 1, "timestamp": 1.5}),
        Action(A.PHASE_START, {"name": "b", "attempt": 1, "timestamp": 1.5}),
        Action(A.PHASE_FAILED, {"name": "b", "error": "E: x", "traceback": "TB here\n",
                                "timestamp": 2.0}),
        Action(A.PIPELINE_COMPLETE, {"timestamp": 2.0}),
    ])
    text = format_summary(state, failures_only=True)
    assert [line for line in text.splitlines() if line.startswith("  [")] == [
        "  [FAIL] b  (0.50s)  E: x"]
    assert "TB here" in text


@pytest.mark.parametrize(("seconds", "text"), [(0.0, "0.00s"), (0.042, "0.04s"),
                                               (1.24, "1.2s"), (59.9, "59.9s"),
                                               (125.4, "2m05s")])
def test_short_duration(seconds: float, text: str) -> None:
    assert short_duration(seconds) == text


class _ClosedStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reporter_whose_stream_breaks_says_so_and_the_run_goes_on() -> None:
    from phasewise.plugins.manager import plugin_manager

    reporter = ProgressReporter(_ClosedStream())
    pm = plugin_manager()
    pm.register(reporter)
    try:
        with pytest.warns(Warning) as seen:
            result = PIPELINE.run(executor="thread")
    finally:
        if pm.is_registered(reporter):
            pm.unregister(reporter)
        pm.records = [r for r in pm.records if not r.in_run]
    assert result.ok
    messages = [str(w.message) for w in seen]
    assert any("ProgressReporter stopped reporting the run: BrokenPipeError" in m
               for m in messages), messages


def test_a_reporter_stops_observing_the_store_when_its_run_ends() -> None:
    from phasewise.plugins.manager import plugin_manager

    out = io.StringIO()
    reporter = ProgressReporter(out)
    store = Store(PIPELINE.build_reducer())
    pm = plugin_manager()
    pm.register(reporter)
    try:
        PIPELINE.run(executor="inline", store=store)
    finally:
        pm.unregister(reporter)
    written = out.getvalue()
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 2}))  # the caller's store
    assert out.getvalue() == written
