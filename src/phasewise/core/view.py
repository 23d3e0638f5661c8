"""State and reducer for an interactive, keyboard-driven view of a running pipeline.

Overview mode: ↑/↓ move the selection, Enter or space expands the selected phase's
logs, Escape or ``q`` quits. Expanded: ↑/↓ scroll (and stop following), Home/End or
``g``/``G`` jump to the top/bottom, ``f`` toggles auto-follow, Enter/space/Escape
collapse, ``q`` quits. Auto-follow keeps the newest lines of the selected phase in view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import Any

from phasewise.core.actions import INIT, PHASE_LOG, Action
from phasewise.core.state import PipelineState
from phasewise.core.store import Quit  # the view reducer returns it when the user leaves

__all__ = ["KEY", "Key", "PipelineViewState", "Quit", "SpecialKey", "make_detail_reducer"]

KEY = "@@KEY"


class SpecialKey(Enum):
    UP = auto()
    DOWN = auto()
    LEFT = auto()
    RIGHT = auto()
    ENTER = auto()
    ESCAPE = auto()
    HOME = auto()
    END = auto()
    TAB = auto()
    BACKSPACE = auto()
    PAGE_UP = auto()
    PAGE_DOWN = auto()


@dataclass(frozen=True, slots=True)
class Key:
    """One keypress: a printable ``char`` or a ``name`` from SpecialKey."""

    char: str = ""
    name: SpecialKey | None = None
    ctrl: bool = False
    alt: bool = False
    shift: bool = False


@dataclass(frozen=True, slots=True)
class PipelineViewState:
    """A PipelineState plus what the user is looking at."""

    pipeline: PipelineState
    selected_phase: int = 0
    expanded: bool = False
    log_scroll: int = 0
    auto_follow: bool = True
    log_height: int = 10


ViewReducer = Callable[[PipelineViewState | None, Action], "PipelineViewState | Quit"]


def make_detail_reducer(pipeline_reducer: Callable[[Any, Action], PipelineState]) -> ViewReducer:
    """Wrap ``pipeline_reducer``: ``@@KEY`` actions drive the view, others go inside."""

    def bottom(view: PipelineViewState, index: int | None = None) -> int:
        phases = view.pipeline.phases
        i = view.selected_phase if index is None else index
        logs = len(phases[i].logs) if 0 <= i < len(phases) else 0
        return max(0, logs - view.log_height)

    def on_key(view: PipelineViewState, key: Key) -> PipelineViewState | Quit:
        count = len(view.pipeline.phases)
        if key.char == "q" or (key.name is SpecialKey.ESCAPE and not view.expanded):
            return Quit(view)
        if count == 0:
            return view
        if not view.expanded:
            if key.name is SpecialKey.UP:
                return replace(view, selected_phase=max(0, view.selected_phase - 1))
            if key.name is SpecialKey.DOWN:
                return replace(view, selected_phase=min(count - 1, view.selected_phase + 1))
            if key.name is SpecialKey.HOME:
                return replace(view, selected_phase=0)
            if key.name is SpecialKey.END:
                return replace(view, selected_phase=count - 1)
            if key.name is SpecialKey.ENTER or key.char == " ":
                return replace(view, expanded=True, auto_follow=True, log_scroll=bottom(view))
            return view
        if key.name is SpecialKey.UP:
            return replace(view, log_scroll=max(0, view.log_scroll - 1), auto_follow=False)
        if key.name is SpecialKey.DOWN:
            scroll = min(bottom(view), view.log_scroll + 1)
            return replace(view, log_scroll=scroll, auto_follow=False)
        if key.name is SpecialKey.HOME or key.char == "g":
            return replace(view, log_scroll=0, auto_follow=False)
        if key.name is SpecialKey.END or key.char == "G":
            return replace(view, log_scroll=bottom(view), auto_follow=False)
        if key.char == "f":
            if view.auto_follow:
                return replace(view, auto_follow=False)
            return replace(view, auto_follow=True, log_scroll=bottom(view))
        if key.name in (SpecialKey.ENTER, SpecialKey.ESCAPE) or key.char == " ":
            return replace(view, expanded=False, log_scroll=0)
        return view

    def reducer(view: PipelineViewState | None, action: Action) -> PipelineViewState | Quit:
        if view is None or action.type == INIT:
            return PipelineViewState(pipeline=pipeline_reducer(None, Action(INIT)))
        if action.type == KEY:
            key = action.payload
            return on_key(view, key) if isinstance(key, Key) else view
        new = replace(view, pipeline=pipeline_reducer(view.pipeline, action))
        if (
            new.auto_follow
            and action.type == PHASE_LOG
            and 0 <= new.selected_phase < len(new.pipeline.phases)
            and isinstance(action.payload, dict)
            and action.payload.get("name") == new.pipeline.phases[new.selected_phase].name
        ):
            new = replace(new, log_scroll=bottom(new))
        return new

    return reducer
