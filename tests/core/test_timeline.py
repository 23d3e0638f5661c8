"""pipeline_to_timeline and the active-pipeline holder."""

from __future__ import annotations

import json
import threading

import pytest

from phasewise import Action, Phase, Pipeline
from phasewise.core.actions import (
    PHASE_COMPLETE,
    PHASE_FAILED,
    PHASE_LOG,
    PHASE_START,
    PIPELINE_START,
)
from phasewise.core.timeline import get_active_pipeline, pipeline_to_timeline, set_active_pipeline


def noop() -> None:
    return None


PIPELINE = Pipeline("tl", Phase("a", noop, weight=3), Phase("b", noop))


@pytest.fixture
def state():
    reducer = PIPELINE.build_reducer()
    s = reducer(None, Action("@@INIT"))
    for action in (
        Action(PIPELINE_START, 10.0),
        Action(PHASE_START, {"name": "a", "attempt": 1, "timestamp": 10.0}),
        Action(PHASE_LOG, {"name": "a", "line": "x", "stream": "stdout", "timestamp": 10.5}),
        Action(PHASE_LOG, {"name": "a", "line": "y", "stream": "stderr", "timestamp": 10.6}),
        Action(PHASE_COMPLETE, {"name": "a", "result": 1, "cached": True, "timestamp": 11.25}),
        Action(PHASE_START, {"name": "b", "attempt": 2, "timestamp": 11.5}),
        Action(PHASE_FAILED, {"name": "b", "error": "ValueError: no", "timestamp": 12.0}),
    ):
        s = reducer(s, action)
    return s


def test_timeline_keys_are_exactly_as_designed(state) -> None:
    doc = pipeline_to_timeline(state)
    assert set(doc) == {"pipeline", "status", "elapsed", "progress", "phases"}
    for phase in doc["phases"]:
        assert set(phase) == {
            "name", "status", "elapsed", "attempt", "error", "log_count", "cached",
        }


def test_timeline_values(state) -> None:
    doc = pipeline_to_timeline(state)
    assert doc["pipeline"] == "tl"
    assert doc["status"] == "failed"
    assert doc["progress"] == pytest.approx(0.75)
    assert doc["elapsed"] == pytest.approx(2.0)
    a, b = doc["phases"]
    assert a["name"] == "a"
    assert a["status"] == "completed"
    assert a["elapsed"] == pytest.approx(1.25)
    assert a["attempt"] == 1
    assert not a["error"]
    assert a["log_count"] == 2
    assert a["cached"] is True
    assert b["status"] == "failed"
    assert b["attempt"] == 2
    assert b["error"] == "ValueError: no"
    assert b["log_count"] == 0
    assert b["cached"] is False


def test_timeline_is_json_serialisable(state) -> None:
    doc = pipeline_to_timeline(state)
    assert json.loads(json.dumps(doc)) == doc


def test_timeline_of_a_fresh_state() -> None:
    doc = pipeline_to_timeline(PIPELINE.build_reducer()(None, Action("@@INIT")))
    assert doc["status"] == "pending"
    assert [p["status"] for p in doc["phases"]] == ["pending", "pending"]


@pytest.fixture
def restore_active():
    before = get_active_pipeline()
    yield
    set_active_pipeline(before)


@pytest.mark.usefixtures("restore_active")
def test_set_and_get_active_pipeline(state) -> None:
    set_active_pipeline(None)
    assert get_active_pipeline() is None
    set_active_pipeline(state)
    assert get_active_pipeline() is state
    seen = []
    reader = threading.Thread(target=lambda: seen.append(get_active_pipeline()))
    reader.start()
    reader.join()
    assert seen == [state]
    set_active_pipeline(None)
    assert get_active_pipeline() is None
