"""The progress reporter, the summary table and the JSON document, without the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import pytest

from phasewise import Action, Phase, Pipeline, Store
from phasewise.cli.report import (
    ProgressReporter,
    attempts,
    format_summary,
    format_table,
    json_document,
)
from phasewise.core import actions as A


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
    """Lines without their ``[  t.tts] `` time prefix."""
    return [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]


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
        "start     a",
        "a | out line",
        "a ! err line",
        "retry     a: E: x; attempt 2 of 3 follows",
        "start     a (attempt 2)",
        "done      a in 0.25s",
        "FAILED    b after 0.00s: ValueError: no",
    ]


def test_logs_hidden_when_not_capturing_and_unknown_phases_ignored() -> None:
    store, _, out = _reporting_store(show_logs=False)
    store.dispatch(Action(A.PHASE_LOG, {"name": "a", "line": "x", "stream": "stdout"}))
    with contextlib.suppress(ValueError):  # the reducer may refuse a phase it does not know
        store.dispatch(Action(A.PHASE_START, {"name": "ghost", "attempt": 1}))
    store.dispatch(Action(A.PHASE_SKIPPED, {"name": "b", "error": "KeyError: k"}))
    store.dispatch(Action(A.PHASE_CANCELLED, {"name": "a", "reason": "not started"}))
    assert _messages(out) == ["skipped   b: KeyError: k", "cancelled a: not started"]


def test_a_phase_action_may_carry_the_name_alone() -> None:
    store, _, out = _reporting_store()
    store.dispatch(Action(A.PHASE_START, {"name": "a", "attempt": 1}))
    try:
        store.dispatch(Action(A.PHASE_COMPLETE, "a"))
    except (TypeError, ValueError, AttributeError):
        pytest.skip("this reducer takes dict payloads only")
    assert _messages(out)[1].startswith("done      a in ")


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
    assert sorted(_messages(out)) == ["start     a", "start     b"]


def test_format_table_aligns_columns() -> None:
    text = format_table(("x", "longer"), [("abc", "1"), ("d", "")])
    assert text.splitlines() == ["x    longer", "---  ------", "abc  1", "d"]


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
    rows = [line.split() for line in text.splitlines()]
    assert ["a", "failed", "1.50s", "1", "ValueError:", "bad"] in rows
    assert ["b", "cancelled", "0.00s", "0", "not", "started"] in rows  # it never started
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
    assert [line.split("] ", 1)[1] for line in lines[2:]] == ["start     a"]


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
    """The phase column of a summary: the rows under the dashed rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return [line.split()[0] for line in lines[rule + 1:] if line.strip()]


def test_summary_follows_the_order_it_is_given() -> None:
    pipeline = Pipeline("o", Phase("z", _noop), Phase("m", _noop), Phase("a", _noop))
    state = pipeline.build_reducer()(None, Action(A.INIT))
    declared = format_summary(state)
    assert _summary_names(declared) == ["z", "m", "a"]
    assert "execution order" not in declared
    ordered = format_summary(state, pipeline.execution_order())
    assert _summary_names(ordered) == ["a", "m", "z"]
    assert ordered.splitlines()[0].endswith("; phases in execution order")


def test_json_document_keeps_json_values_and_reprs_the_rest() -> None:
    state = PIPELINE.build_reducer()(None, Action(A.INIT))
    doc = json.loads(json_document(state, {
        "a": {"k": [1, "two"]}, "b": object, "c": math.nan, "d": None,
    }))
    assert doc["pipeline"] == "r"
    assert doc["results"]["a"] == {"k": [1, "two"]}
    assert doc["results"]["b"] == repr(object)
    assert doc["results"]["c"] == "nan"
    assert doc["results"]["d"] is None
