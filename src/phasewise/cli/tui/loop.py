"""The loop both detail views run, ``phasewise watch`` and ``run --tui``: keys from the
terminal into the view Store, and its state drawn, until the Store's reducer quits.

::

    Terminal.read ─▶ KeyDecoder ─▶ Key ─▶ before_key? ─▶ Action("@@KEY") ─▶ view Store
    view Store.state, note() ─▶ render_view ─▶ Terminal.draw   (≤ 10 frames/s: when the
        state, the note or the terminal's size changed, and once a second for the clocks)
    tick() once per FRAME_INTERVAL   (the watch polls its files there)

``view_store`` makes the view Store each view starts from; how many lines of output it
scrolls by (``PipelineViewState.log_height``) is set by ``log_height_for`` from the
terminal's height when the view opens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from phasewise.cli.tui.keys import KeyDecoder
from phasewise.cli.tui.screen import render_view
from phasewise.cli.tui.terminal import Terminal
from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.store import Store
from phasewise.core.view import KEY, Key, PipelineViewState

__all__ = ["FRAME_INTERVAL", "ViewLoop", "log_height_for", "view_store"]

FRAME_INTERVAL = 0.1
"""Seconds between two frames at least (and between two looks at a watched work
directory's files)."""

_ESCAPE_WAIT = 0.05  # a lone ESC with nothing after it for this long is the Escape key


class ViewLoop:
    """Reads keys into the view Store and draws its state, until the Store's reducer
    quits, ``stop`` is set or the terminal is gone.

    ``before_key(key)`` may take a key for itself (return True) before it reaches the
    Store; ``note()`` is the text of the last line; ``tick()`` runs once per frame
    interval (the watch polls its files there).
    """

    def __init__(self, terminal: Terminal, store: Callable[[], Store], clock: Callable[[], float],
                 *, note: Callable[[], str] = lambda: "",
                 before_key: Callable[[Key], bool] = lambda key: False,
                 tick: Callable[[], None] = lambda: None) -> None:
        self.terminal, self._store, self._clock = terminal, store, clock
        self._note, self._before_key, self._tick = note, before_key, tick
        self.stop = threading.Event()
        self.redraw = threading.Event()

    def run(self) -> None:
        decoder = KeyDecoder()
        drawn: tuple[object, str, tuple[int, int]] = (None, "", (0, 0))
        last_frame = last_byte = 0.0
        next_tick = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self._tick()
                next_tick = now + FRAME_INTERVAL
            store = self._store()
            state, note, size = store.state, self._note(), self.terminal.size()
            stale = (state is not drawn[0] or (note, size) != drawn[1:]
                     or self.redraw.is_set() or now - last_frame >= 1.0)
            if stale and now - last_frame >= FRAME_INTERVAL:
                self.redraw.clear()
                try:
                    self._draw(state, note, size)
                except OSError:  # EIO: the terminal hung up
                    return
                drawn, last_frame, stale = (state, note, size), now, False
            # wake for the next tick, or sooner for a frame held back by the frame rate
            due = min(next_tick, last_frame + FRAME_INTERVAL) if stale else next_tick
            wait = due - time.monotonic()
            if decoder.pending:
                wait = min(wait, last_byte + _ESCAPE_WAIT - time.monotonic())
            try:
                data = self.terminal.read(max(0.005, wait))
            except EOFError:
                return
            if data:
                keys, last_byte = decoder.feed(data), time.monotonic()
            elif decoder.pending and time.monotonic() - last_byte >= _ESCAPE_WAIT:
                keys = decoder.flush()
            else:
                continue
            for key in keys:
                if self.stop.is_set():
                    return
                if self._before_key(key):
                    continue
                store.dispatch(Action(KEY, key))
                if store.quit_requested:
                    return

    def _draw(self, view: PipelineViewState, note: str, size: tuple[int, int]) -> None:
        columns, lines = size
        self.terminal.draw(render_view(view, width=columns - 1, height=lines,
                                       now=self._clock(), note=note))


def log_height_for(rows: int, phases: int) -> int:
    """Lines of output the view shows at once, given the terminal's height and the
    number of phases."""
    return max(3, rows - 4 - min(phases, max(3, rows // 3)))


def view_store(reducer: Callable[[Any, Action], Any], log_height: int) -> Store:
    """A Store of ``reducer``, from its initial state with ``log_height`` set."""
    initial = reducer(None, Action(A.INIT))
    return Store(reducer, initial_state=replace(initial, log_height=log_height))

