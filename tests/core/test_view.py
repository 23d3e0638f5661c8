"""make_detail_reducer: the keyboard-driven detail view over a pipeline's state."""

from __future__ import annotations

import pytest

from phasewise import Action, Phase, Pipeline, Store
from phasewise.core.actions import PHASE_COMPLETE, PHASE_LOG, PHASE_START
from phasewise.core.view import Key, PipelineViewState, Quit, SpecialKey, make_detail_reducer


def noop() -> None:
    return None


PIPELINE = Pipeline("view", Phase("a", noop), Phase("b", noop), Phase("c", noop))


def key(char: str = "", name: SpecialKey | None = None) -> Action:
    return Action("@@KEY", Key(char=char, name=name))


UP, DOWN = key(name=SpecialKey.UP), key(name=SpecialKey.DOWN)
ENTER, ESCAPE = key(name=SpecialKey.ENTER), key(name=SpecialKey.ESCAPE)
HOME, END = key(name=SpecialKey.HOME), key(name=SpecialKey.END)


def log(name: str, line: str) -> Action:
    return Action(PHASE_LOG, {"name": name, "line": line, "stream": "stdout", "timestamp": 0.0})


@pytest.fixture
def reducer():
    return make_detail_reducer(PIPELINE.build_reducer())


@pytest.fixture
def view(reducer) -> PipelineViewState:
    return reducer(None, Action("@@INIT"))


def press(reducer, view, *actions: Action):
    for action in actions:
        view = reducer(view, action)
        assert not isinstance(view, Quit), action
    return view


def with_logs(reducer, view, name: str, count: int):
    for i in range(count):
        view = reducer(view, log(name, f"{name}{i}"))
    return view


def test_initial_view_state(view: PipelineViewState) -> None:
    assert isinstance(view, PipelineViewState)
    assert view.selected_phase == 0
    assert view.expanded is False
    assert view.log_scroll == 0
    assert view.auto_follow is True
    assert view.log_height > 0
    assert [p.status for p in view.pipeline.phases] == ["pending"] * 3


def test_up_down_move_the_selection_within_bounds(reducer, view) -> None:
    assert press(reducer, view, UP).selected_phase == 0
    assert press(reducer, view, DOWN).selected_phase == 1
    assert press(reducer, view, DOWN, DOWN, DOWN, DOWN).selected_phase == 2
    assert press(reducer, view, DOWN, DOWN, UP).selected_phase == 1


def test_enter_and_space_expand_escape_collapses(reducer, view) -> None:
    expanded = press(reducer, view, DOWN, ENTER)
    assert expanded.expanded is True
    assert expanded.selected_phase == 1
    assert press(reducer, expanded, ESCAPE).expanded is False
    assert press(reducer, view, key(" ")).expanded is True
    assert press(reducer, view, key(" "), key(" ")).expanded is False
    assert press(reducer, view, ENTER, ENTER).expanded is False


def test_escape_in_the_overview_quits(reducer, view) -> None:
    result = reducer(view, ESCAPE)
    assert isinstance(result, Quit)
    assert result.state == view


@pytest.mark.parametrize("expanded", [False, True])
def test_q_returns_quit_with_the_state(reducer, view, expanded: bool) -> None:
    if expanded:
        view = press(reducer, view, ENTER)
    result = reducer(view, key("q"))
    assert isinstance(result, Quit)
    assert result.state == view


def test_scrolling_an_expanded_phase_stays_in_bounds(reducer, view) -> None:
    view = with_logs(reducer, view, "a", 25)  # log_height lines visible at once
    height = view.log_height
    bottom = 25 - height
    view = press(reducer, view, ENTER)
    assert view.log_scroll == bottom  # opens following the newest lines
    assert press(reducer, view, DOWN).log_scroll == bottom
    up = press(reducer, view, UP)
    assert up.log_scroll == bottom - 1
    assert up.auto_follow is False
    assert press(reducer, view, HOME).log_scroll == 0
    assert press(reducer, view, HOME, UP).log_scroll == 0
    assert press(reducer, view, key("g")).log_scroll == 0
    assert press(reducer, view, HOME, END).log_scroll == bottom
    assert press(reducer, view, key("g"), key("G")).log_scroll == bottom
    assert press(reducer, view, HOME, DOWN, DOWN).log_scroll == 2


def test_scrolling_with_fewer_lines_than_the_height_stays_at_zero(reducer, view) -> None:
    view = press(reducer, with_logs(reducer, view, "a", 3), ENTER)
    assert press(reducer, view, DOWN).log_scroll == 0
    assert press(reducer, view, END).log_scroll == 0
    assert press(reducer, view, UP).log_scroll == 0


def test_up_down_while_expanded_scroll_instead_of_moving(reducer, view) -> None:
    view = press(reducer, with_logs(reducer, view, "a", 30), ENTER, UP, UP)
    assert view.selected_phase == 0
    assert press(reducer, view, DOWN).selected_phase == 0


def test_f_toggles_auto_follow(reducer, view) -> None:
    view = press(reducer, with_logs(reducer, view, "a", 30), ENTER, HOME)
    assert view.auto_follow is False
    following = press(reducer, view, key("f"))
    assert following.auto_follow is True
    assert following.log_scroll == 30 - view.log_height
    assert press(reducer, following, key("f")).auto_follow is False


def test_auto_follow_scrolls_on_new_lines_of_the_selected_phase(reducer, view) -> None:
    view = press(reducer, with_logs(reducer, view, "a", 12), ENTER)
    view = with_logs(reducer, view, "a", 5)  # 17 lines now
    assert view.log_scroll == 17 - view.log_height
    # lines of another phase do not move the view
    assert with_logs(reducer, view, "b", 40).log_scroll == 17 - view.log_height


def test_without_auto_follow_new_lines_do_not_scroll(reducer, view) -> None:
    view = press(reducer, with_logs(reducer, view, "a", 20), ENTER, HOME)
    assert with_logs(reducer, view, "a", 10).log_scroll == 0


def test_other_actions_go_to_the_inner_reducer(reducer, view) -> None:
    inner = PIPELINE.build_reducer()
    action = Action(PHASE_START, {"name": "b", "attempt": 1, "timestamp": 1.0})
    after = reducer(view, action)
    assert after.pipeline == inner(view.pipeline, action)
    assert after.pipeline.phase("b").status == "running"
    assert after.selected_phase == view.selected_phase
    after = reducer(after, Action(PHASE_COMPLETE, {"name": "b", "result": 1, "timestamp": 2.0}))
    assert after.pipeline.phase("b").status == "completed"


def test_unknown_keys_change_nothing(reducer, view) -> None:
    assert reducer(view, key("z")) == view
    expanded = press(reducer, view, ENTER)
    assert reducer(expanded, key("z")) == expanded


def test_a_store_with_the_view_reducer_records_quit() -> None:
    store = Store(make_detail_reducer(PIPELINE.build_reducer()))
    store.dispatch(DOWN)
    assert store.quit_requested is False
    store.dispatch(key("q"))
    assert store.quit_requested is True
    assert isinstance(store.state, PipelineViewState)
    assert store.state.selected_phase == 1
