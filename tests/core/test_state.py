"""The pipeline reducer: every action of DESIGN §3, purity, and a reference model."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasewise import Action, Phase, PhaseLog, PhaseStatus, Pipeline, PipelineState
from phasewise.core.actions import (
    PHASE_CANCELLED,
    PHASE_COMPLETE,
    PHASE_FAILED,
    PHASE_LOG,
    PHASE_RETRY,
    PHASE_SKIPPED,
    PHASE_START,
    PIPELINE_COMPLETE,
    PIPELINE_START,
)


def noop() -> None:
    return None


def make_pipeline(*specs: tuple[str, float], max_logs: int = 200) -> Pipeline:
    return Pipeline("p", *(Phase(n, noop, weight=w, max_logs=max_logs) for n, w in specs))


@pytest.fixture
def reducer():
    return make_pipeline(("a", 1), ("b", 1), ("c", 2)).build_reducer()


@pytest.fixture
def init(reducer) -> PipelineState:
    return reducer(None, Action("@@INIT"))


def apply(reducer, state, *actions: Action) -> PipelineState:
    for action in actions:
        state = reducer(state, action)
    return state


# ── each action ─────────────────────────────────────────────────────────────


def test_init_gives_every_phase_pending_in_declaration_order(init: PipelineState) -> None:
    assert init.name == "p"
    assert init.status == "pending"
    assert init.progress == 0
    assert [p.name for p in init.phases] == ["a", "b", "c"]
    assert all(p.status == "pending" for p in init.phases)
    assert isinstance(init.phases, tuple)
    assert all(isinstance(p, PhaseStatus) for p in init.phases)


def test_init_resets_any_state(reducer, init) -> None:
    running = apply(reducer, init, Action(PIPELINE_START, 1.0),
                    Action(PHASE_START, {"name": "a", "attempt": 1}))
    assert reducer(running, Action("@@INIT")) == init


def test_none_state_with_any_action_starts_from_init(reducer) -> None:
    state = reducer(None, Action(PHASE_START, {"name": "a", "attempt": 1}))
    assert state.phase("a").status == "running"


def test_pipeline_start_and_complete(reducer, init) -> None:
    started = reducer(init, Action(PIPELINE_START, 100.0))
    assert started.status == "running"
    assert started.started_at == 100.0
    done = apply(
        reducer, started,
        *(Action(PHASE_COMPLETE, {"name": n, "result": 1, "timestamp": 101.0}) for n in "abc"),
        Action(PIPELINE_COMPLETE, {"timestamp": 103.5}),
    )
    assert done.status == "completed"
    assert done.progress == 1.0
    assert done.elapsed == pytest.approx(3.5)


def test_pipeline_complete_keeps_failed_and_honours_explicit_status(reducer, init) -> None:
    failed = apply(reducer, init, Action(PIPELINE_START, 1.0),
                   Action(PHASE_FAILED, {"name": "a", "error": "E"}),
                   Action(PIPELINE_COMPLETE, None))
    assert failed.status == "failed"
    cancelled = apply(reducer, init, Action(PIPELINE_START, 1.0),
                      Action(PIPELINE_COMPLETE, {"status": "cancelled"}))
    assert cancelled.status == "cancelled"


def test_phase_start(reducer, init) -> None:
    state = apply(reducer, init, Action(PIPELINE_START, 10.0),
                  Action(PHASE_START, {"name": "b", "attempt": 2, "timestamp": 12.0}))
    b = state.phase("b")
    assert b.status == "running"
    assert b.attempt == 2
    assert b.started_at == 12.0
    assert state.current_phase == "b"
    assert state.phase("a").status == "pending"
    assert (b.executor, b.worker) == ("", "")


def test_phase_start_records_where_the_attempt_runs(reducer, init) -> None:
    on = {"name": "b", "executor": "process", "worker": "pid 42"}
    state = apply(reducer, init, Action(PHASE_START, on))
    assert (state.phase("b").executor, state.phase("b").worker) == ("process", "pid 42")
    # a retry on a worker in phasewise's own process: the worker is not carried over
    state = apply(reducer, state, Action(PHASE_START, {"name": "b", "attempt": 2,
                                                       "executor": "thread"}))
    assert (state.phase("b").executor, state.phase("b").worker) == ("thread", "")


def test_phase_complete(reducer, init) -> None:
    state = apply(reducer, init,
                  Action(PHASE_START, {"name": "a", "attempt": 1, "timestamp": 5.0}),
                  Action(PHASE_COMPLETE, {"name": "a", "result": 42, "timestamp": 7.5}))
    a = state.phase("a")
    assert a.status == "completed"
    assert a.error == ""
    assert a.elapsed == pytest.approx(2.5)
    assert a.cached is False
    assert state.progress == pytest.approx(1 / 4)


def test_phase_failed_sets_the_pipeline_failed_at_once(reducer, init) -> None:
    state = apply(reducer, init, Action(PIPELINE_START, 1.0),
                  Action(PHASE_START, {"name": "a", "attempt": 1}),
                  Action(PHASE_START, {"name": "b", "attempt": 1}),
                  Action(PHASE_FAILED, {"name": "a", "error": "ValueError: boom"}))
    assert state.status == "failed"
    assert state.phase("a").status == "failed"
    assert state.phase("a").error == "ValueError: boom"
    assert state.phase("b").status == "running"
    assert state.progress == 0


def test_phase_skipped_counts_towards_progress(reducer, init) -> None:
    state = apply(reducer, init, Action(PHASE_START, {"name": "c", "attempt": 1}),
                  Action(PHASE_SKIPPED, {"name": "c", "error": "KeyError: x"}))
    c = state.phase("c")
    assert c.status == "skipped"
    assert c.error == "KeyError: x"
    assert state.progress == pytest.approx(2 / 4)
    assert state.status != "failed"


def test_phase_retry(reducer, init) -> None:
    state = apply(reducer, init, Action(PHASE_START, {"name": "a", "attempt": 1}),
                  Action(PHASE_RETRY, {"name": "a", "attempt": 2, "error": "OSError: flaky",
                                       "max_retries": 3}))
    a = state.phase("a")
    assert a.status == "retrying"
    assert a.attempt == 2
    assert a.error == "OSError: flaky"
    again = apply(reducer, state, Action(PHASE_START, {"name": "a", "attempt": 2}),
                  Action(PHASE_COMPLETE, {"name": "a", "result": None}))
    assert again.phase("a").status == "completed"
    assert again.phase("a").attempt == 2
    assert again.phase("a").error == ""


def test_phase_cancelled(reducer, init) -> None:
    state = reducer(init, Action(PHASE_CANCELLED, {"name": "b", "reason": "not started"}))
    assert state.phase("b").status == "cancelled"
    assert state.phase("b").error == "not started"
    assert state.progress == 0


def test_phase_log_appends_lines_with_stream_and_timestamp(reducer, init) -> None:
    state = apply(
        reducer, init,
        Action(PHASE_LOG, {"name": "a", "line": "one", "stream": "stdout", "timestamp": 1.0}),
        Action(PHASE_LOG, {"name": "a", "line": "two", "stream": "stderr", "timestamp": 2.0}),
    )
    assert state.phase("a").logs == (
        PhaseLog("one", "stdout", 1.0),
        PhaseLog("two", "stderr", 2.0),
    )
    assert state.phase("b").logs == ()


@pytest.mark.parametrize("max_logs", [1, 3, 7])
def test_phase_log_ring_keeps_the_newest_in_order(max_logs: int) -> None:
    reducer = make_pipeline(("a", 1), max_logs=max_logs).build_reducer()
    state = reducer(None, Action("@@INIT"))
    for i in range(20):
        state = reducer(state, Action(PHASE_LOG, {"name": "a", "line": f"l{i}",
                                                  "stream": "stdout", "timestamp": i}))
    assert [log.line for log in state.phase("a").logs] == [
        f"l{i}" for i in range(20 - max_logs, 20)
    ]


def test_max_logs_zero_keeps_nothing() -> None:
    reducer = make_pipeline(("a", 1), max_logs=0).build_reducer()
    state = reducer(reducer(None, Action("@@INIT")),
                    Action(PHASE_LOG, {"name": "a", "line": "x", "stream": "stdout"}))
    assert state.phase("a").logs == ()


def test_progress_is_by_weight() -> None:
    reducer = make_pipeline(("light", 1), ("heavy", 3)).build_reducer()
    state = reducer(None, Action("@@INIT"))
    state = reducer(state, Action(PHASE_COMPLETE, {"name": "heavy", "result": 1}))
    assert state.progress == pytest.approx(0.75)
    state = reducer(state, Action(PHASE_SKIPPED, {"name": "light", "error": "x"}))
    assert state.progress == pytest.approx(1.0)


# ── payload forms (issue 16): a dict with "name", or milo's bare phase name ─────

PHASE_KINDS = [PHASE_START, PHASE_COMPLETE, PHASE_FAILED, PHASE_SKIPPED, PHASE_RETRY,
               PHASE_CANCELLED, PHASE_LOG]
STATUS_AFTER = {PHASE_START: "running", PHASE_COMPLETE: "completed", PHASE_FAILED: "failed",
                PHASE_SKIPPED: "skipped", PHASE_RETRY: "retrying",
                PHASE_CANCELLED: "cancelled", PHASE_LOG: "pending"}


def observable(state: PipelineState) -> tuple[Any, ...]:
    """Everything but the clock readings (a payload without a timestamp reads the clock)."""
    return (state.status, state.progress, state.current_phase, tuple(
        (p.name, p.status, p.error, p.attempt, p.logs, p.cached) for p in state.phases))


@pytest.mark.parametrize("kind", PHASE_KINDS)
def test_a_bare_phase_name_is_the_payload_name(reducer, init, kind: str) -> None:
    running = reducer(init, Action(PIPELINE_START, 1.0))
    by_name = reducer(running, Action(kind, "b"))
    by_dict = reducer(running, Action(kind, {"name": "b"}))
    assert observable(by_name) == observable(by_dict)
    assert by_name.phase("b").status == STATUS_AFTER[kind]
    assert by_name.phase("a") == running.phase("a")
    if kind == PHASE_LOG:
        assert by_name.phase("b").logs == (PhaseLog(""),)
    else:
        assert by_name != running


def test_milo_shaped_run_with_name_payloads(reducer, init) -> None:
    state = apply(reducer, init, Action(PIPELINE_START, 1.0),
                  Action(PHASE_START, "a"), Action(PHASE_COMPLETE, "a"),
                  Action(PHASE_START, "c"), Action(PHASE_SKIPPED, "c"),
                  Action(PHASE_START, "b"), Action(PHASE_FAILED, "b"))
    assert [p.status for p in state.phases] == ["completed", "failed", "skipped"]
    assert state.progress == pytest.approx(3 / 4)
    assert state.status == "failed"
    assert state.current_phase == "b"


@pytest.mark.parametrize("kind", PHASE_KINDS)
@pytest.mark.parametrize("payload", [3, 2.5, None, True, ("a",), ["a"], b"a", object()],
                         ids=lambda p: type(p).__name__)
def test_a_payload_neither_dict_nor_str_is_a_value_error(reducer, init, kind, payload) -> None:
    with pytest.raises(ValueError) as caught:
        reducer(init, Action(kind, payload))
    message = str(caught.value)
    assert message.startswith(f"{kind}: payload must be a phase name or a dict with 'name', ")
    assert f"({type(payload).__name__})" in message
    assert init.status == "pending"  # nothing happened to the state it was given


def test_bad_payload_message_shows_the_value() -> None:
    reducer = make_pipeline(("a", 1)).build_reducer()
    with pytest.raises(ValueError, match=r"^@@PHASE_START: payload must be a phase name or "
                       r"a dict with 'name', got 3 \(int\)$"):
        reducer(None, Action(PHASE_START, 3))


@pytest.mark.parametrize("kind", PHASE_KINDS)
@pytest.mark.parametrize("payload", ["ghost", {"name": "ghost", "error": "x", "line": "x"}],
                         ids=["str", "dict"])
def test_a_name_that_is_no_phase_is_a_value_error(reducer, init, kind, payload) -> None:
    running = reducer(init, Action(PIPELINE_START, 1.0))
    with pytest.raises(ValueError) as caught:
        reducer(running, Action(kind, payload))
    assert str(caught.value) == (
        f"{kind}: payload names no phase of pipeline 'p': 'ghost' (phases: a, b, c)"
    )
    assert running.status == "running"


@pytest.mark.parametrize("kind", PHASE_KINDS)
@pytest.mark.parametrize("payload", [{}, {"error": "x"}, {"name": None}, {"name": 7},
                                     {"name": ["a"]}], ids=str)
def test_a_dict_without_a_known_name_is_a_value_error(reducer, init, kind, payload) -> None:
    with pytest.raises(ValueError) as caught:
        reducer(init, Action(kind, payload))
    message = str(caught.value)
    assert message.startswith(f"{kind}: payload ")
    assert "pipeline 'p'" in message
    assert "a, b, c" in message
    if "name" not in payload:
        assert "has no 'name'" in message


def test_a_long_list_of_phases_is_cut_short_in_the_message() -> None:
    reducer = make_pipeline(*((f"p{i}", 1) for i in range(500))).build_reducer()
    with pytest.raises(ValueError) as caught:
        reducer(None, Action(PHASE_FAILED, "nope"))
    message = str(caught.value)
    assert "p0, p1, p2" in message
    assert "(500 in all)" in message
    assert "p499" not in message


def test_a_huge_payload_is_cut_short_in_the_message(reducer, init) -> None:
    with pytest.raises(ValueError) as caught:
        reducer(init, Action(PHASE_COMPLETE, {"result": "x" * 100_000}))
    assert len(str(caught.value)) < 400


def test_a_store_refuses_the_bad_action_and_keeps_its_state(reducer) -> None:
    from phasewise import Store

    store = Store(reducer)
    seen: list[str] = []
    store.observe(lambda action: seen.append(action.type))
    before = store.state
    with pytest.raises(ValueError, match="names no phase"):
        store.dispatch(Action(PHASE_START, "ghost"))
    assert store.state is before
    assert seen == []
    store.dispatch(Action(PHASE_START, "a"))
    assert store.state.phase("a").status == "running"


@pytest.mark.parametrize("kind", ["@@KEY", "@@SOMETHING_ELSE", PIPELINE_START,
                                  PIPELINE_COMPLETE, "@@INIT"])
@pytest.mark.parametrize("payload", [3, "ghost", None, ("x",), {"name": "ghost"}],
                         ids=lambda p: type(p).__name__)
def test_other_action_types_take_any_payload(reducer, init, kind, payload) -> None:
    after = reducer(init, Action(kind, payload))
    assert isinstance(after, PipelineState)
    assert all(p.status == "pending" for p in after.phases)


def test_unknown_action_types_are_ignored(reducer, init) -> None:
    assert reducer(init, Action("@@SOMETHING_ELSE", {"name": "a"})) == init


def test_reducer_is_pure(reducer, init) -> None:
    snapshots = []
    state = init
    actions = [
        Action(PIPELINE_START, 1.0),
        Action(PHASE_START, {"name": "a", "attempt": 1, "timestamp": 2.0}),
        Action(PHASE_LOG, {"name": "a", "line": "hi", "stream": "stdout", "timestamp": 2.1}),
        Action(PHASE_COMPLETE, {"name": "a", "result": 1, "timestamp": 3.0}),
        Action(PHASE_FAILED, {"name": "b", "error": "E", "timestamp": 4.0}),
        Action(PHASE_CANCELLED, {"name": "c", "reason": "r", "timestamp": 4.0}),
        Action(PIPELINE_COMPLETE, {"timestamp": 5.0}),
    ]
    for action in actions:
        snapshots.append((state, dataclasses.astuple(state)))
        state = reducer(state, action)
    for old, frozen_copy in snapshots:
        assert dataclasses.astuple(old) == frozen_copy
    assert init.status == "pending"
    assert all(p.status == "pending" and p.logs == () for p in init.phases)


def test_states_are_frozen(init) -> None:
    with pytest.raises(AttributeError):
        init.status = "running"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        init.phases[0].status = "running"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        init.phases[0].logs = ()  # type: ignore[misc]


def test_dataclasses_replace_on_pipeline_state(reducer, init) -> None:
    state = reducer(init, Action(PHASE_COMPLETE, {"name": "a", "result": 1}))
    replaced = dataclasses.replace(state, status="cancelled")
    assert replaced.status == "cancelled"
    assert replaced.phases == state.phases
    assert replaced.phase("a").status == "completed"
    new_phases = tuple(PhaseStatus(p.name, "failed") for p in state.phases)
    swapped = dataclasses.replace(state, phases=new_phases)
    assert swapped.phases == new_phases
    assert swapped.phase("b").status == "failed"
    # the reducer keeps working on a replaced state
    after = reducer(swapped, Action(PHASE_COMPLETE, {"name": "b", "result": 2}))
    assert after.phase("b").status == "completed"
    assert after.phase("c").status == "failed"
    assert state.phase("b").status == "pending"


def test_pipeline_state_built_by_hand() -> None:
    phases = (PhaseStatus("x", "completed"), PhaseStatus("y"))
    state = PipelineState("hand", phases, "", 0.0, 0.0, 0.5, "running")
    assert state.phases == phases
    assert state.phase("y").status == "pending"
    assert state.counts() == {"completed": 1, "pending": 1}


def test_equality_and_hash(reducer, init) -> None:
    again = reducer(None, Action("@@INIT"))
    assert again == init
    assert hash(again) == hash(init)
    changed = reducer(init, Action(PHASE_START, {"name": "a", "attempt": 1, "timestamp": 1.0}))
    assert changed != init
    same = reducer(init, Action(PHASE_START, {"name": "a", "attempt": 1, "timestamp": 1.0}))
    assert same == changed


def test_counts(reducer, init) -> None:
    state = apply(reducer, init, Action(PHASE_COMPLETE, {"name": "a", "result": 1}),
                  Action(PHASE_FAILED, {"name": "b", "error": "E"}))
    assert state.counts() == {"completed": 1, "failed": 1, "pending": 1}


# ── the reducer against a naive reference model ─────────────────────────────

NAMES = ["a", "b", "c", "d", "e"]
TARGET = st.sampled_from([*NAMES, "ghost"])
TEXT = st.text(alphabet="xyz !", max_size=4)


def phase_actions() -> st.SearchStrategy[Action]:
    def of(kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
        return st.fixed_dictionaries({"name": TARGET, **fields}).map(lambda p: Action(kind, p))

    return st.one_of(
        of(PHASE_START, attempt=st.integers(1, 4)),
        of(PHASE_COMPLETE, result=st.integers(), cached=st.booleans()),
        of(PHASE_FAILED, error=TEXT),
        of(PHASE_SKIPPED, error=TEXT),
        of(PHASE_RETRY, attempt=st.integers(1, 4), error=TEXT, max_retries=st.just(3)),
        of(PHASE_LOG, line=TEXT, stream=st.sampled_from(["stdout", "stderr"]),
           timestamp=st.floats(0, 10)),
        of(PHASE_CANCELLED, reason=TEXT),
        st.just(Action(PIPELINE_START, 1.0)),
        st.sampled_from([None, {}, {"status": "cancelled"}, {"status": "failed"}]).map(
            lambda p: Action(PIPELINE_COMPLETE, p)),
    )


def reference(weights: dict[str, int], max_logs: int, actions: list[Action]) -> dict[str, Any]:
    """Rebuild everything from scratch, the slow obvious way."""
    phases = {n: {"status": "pending", "error": "", "attempt": 1, "logs": [], "cached": False}
              for n in weights}
    status = "pending"
    for action in actions:
        kind, payload = action.type, action.payload
        if kind == PIPELINE_START:
            status = "running"
            continue
        if kind == PIPELINE_COMPLETE:
            explicit = (payload or {}).get("status")
            status = explicit or (status if status in ("failed", "cancelled") else "completed")
            continue
        p = phases.get(payload["name"])
        if p is None:
            continue
        if kind == PHASE_START:
            p.update(status="running", attempt=payload["attempt"])
        elif kind == PHASE_COMPLETE:
            p.update(status="completed", error="", cached=payload["cached"])
        elif kind == PHASE_FAILED:
            p.update(status="failed", error=payload["error"])
            status = "failed"
        elif kind == PHASE_SKIPPED:
            p.update(status="skipped", error=payload["error"])
        elif kind == PHASE_CANCELLED:
            p.update(status="cancelled", error=payload["reason"])
        elif kind == PHASE_RETRY:
            p.update(status="retrying", error=payload["error"], attempt=payload["attempt"])
        elif kind == PHASE_LOG:
            p["logs"] = ([*p["logs"], (payload["line"], payload["stream"])])[-max_logs:] \
                if max_logs else []
    done = sum(weights[n] for n, p in phases.items() if p["status"] in ("completed", "skipped"))
    return {"phases": phases, "status": status, "progress": done / sum(weights.values())}


@given(
    weights=st.lists(st.integers(1, 5), min_size=1, max_size=len(NAMES)),
    max_logs=st.integers(0, 4),
    actions=st.lists(phase_actions(), max_size=60),
)
def test_reducer_matches_reference_model(weights, max_logs, actions) -> None:
    named = dict(zip(NAMES, weights, strict=False))
    reducer = make_pipeline(*named.items(), max_logs=max_logs).build_reducer()
    state = reducer(None, Action("@@INIT"))
    for action in actions:
        if action.type in PHASE_KINDS and action.payload["name"] not in named:
            with pytest.raises(ValueError, match="names no phase"):
                reducer(state, action)
            continue  # refused: the state stays as it was
        state = reducer(state, action)
    expected = reference(named, max_logs, actions)
    assert state.status == expected["status"]
    assert state.progress == pytest.approx(expected["progress"], abs=1e-9)
    assert [p.name for p in state.phases] == list(named)
    for p in state.phases:
        want = expected["phases"][p.name]
        assert p.status == want["status"]
        assert p.error == want["error"]
        assert p.attempt == want["attempt"]
        assert p.cached == want["cached"]
        assert [(log.line, log.stream) for log in p.logs] == want["logs"]
        assert state.phase(p.name) == p
    assert state.counts() == {
        s: n for s in {q["status"] for q in expected["phases"].values()}
        if (n := sum(q["status"] == s for q in expected["phases"].values()))
    }
