"""The live display: what ``phasewise run`` draws on a terminal while a run goes.

A region at the bottom of the terminal, redrawn in place::

    ✓ fetch        thread            0.4s
    ⠹ resize       process · pid 812 2.1s  attempt 2   resizing 40/120
    ✗ index        process · pid 813 0.3s              ValueError: no such key
    · publish
    ━━━━━━━━━━━━━━━━━━━━━━━━━━━━╺━━━━━━━━━━━━━━━━  58%  2/4 phases · 2.6s · ETA 1.9s

one row per phase — status symbol, label, executor and worker, elapsed, attempt, cache
hit, its last line of output (or, failed, its error) — and a bar weighted by the
phases' weights, with an estimate of the time left. With ``show_output`` every captured
line is printed above the region as ``name | line``, the name colored per phase, so the
output of parallel phases never interleaves unlabelled. When more phases than fit are
in the run, the failed and running ones are shown first, then the latest to finish and
the next to start, and one line counts the rest.

It draws from the Store's state, at most ``FRAMES_PER_SECOND`` times a second, in a
thread of its own — never per action: an action costs it nothing unless it is a line to
echo. When the run ends the region is wiped and the summary written, as the plain
reporter writes it (``LiveDisplay`` is a ``ProgressReporter`` that draws instead of
writing lines).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.errors import PhasewiseWarning
from phasewise.core.state import PhaseStatus, PipelineState
from phasewise.core.store import Store
from phasewise.plugins.markers import hookimpl
from phasewise.plugins.reporters import (
    ProgressReporter,
    elapsed_text,
    printable,
    short_duration,
    where_text,
)

__all__ = ["FRAMES_PER_SECOND", "PENDING_LIMIT", "LiveDisplay", "render_region"]

FRAMES_PER_SECOND = 10
PENDING_LIMIT = 200_000
"""Lines kept to echo at the next frame at most (more come only while nothing draws)."""

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_SYMBOLS = {"pending": "·", "completed": "✓", "failed": "✗", "skipped": "↷",
            "cancelled": "⊘", "retrying": "↻"}
_ASCII = {"pending": ".", "completed": "+", "failed": "x", "skipped": "-",
          "cancelled": "/", "retrying": "r", "running": "*"}
_STYLES = {"pending": "dim", "running": "bold blue", "retrying": "yellow",
           "completed": "green", "failed": "bold red", "skipped": "bright_black",
           "cancelled": "dark_orange"}
_PHASE_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red",
                 "bright_cyan", "bright_magenta")
_ENDINGS = frozenset({A.PHASE_COMPLETE, A.PHASE_FAILED, A.PHASE_SKIPPED,
                      A.PHASE_CANCELLED})


def render_region(
    state: PipelineState, *, width: int, height: int, now: float, frame: int = 0,
    labels: Mapping[str, str] | None = None, order: Sequence[str] | None = None,
    finished: Sequence[str] = (), color: bool = True, unicode: bool = True,
    live: bool = True,
) -> str:
    """The region for ``state``: at most ``height`` lines of fewer than ``width``
    columns, ending in a newline. ``now`` is ``time.monotonic()``, to time running phases
    and, while the run is ``live``, the run itself; ``frame`` turns the spinner;
    ``finished`` names phases in the order they ended (for the window of a run larger
    than the terminal); ``order`` is the order of the rows.

    Laid out by hand, not with rich's tables: a frame must cost next to nothing (a
    table of 40 rows took 19 ms to lay out, a fifth of the time between two frames)."""
    from rich.cells import cell_len

    width -= 1  # a line that filled the last column would wrap on some terminals
    labels = labels or {}
    paint = _paint if color else _plain
    phases = _rows(state, order, finished, max(1, height - 2))
    cells = [(p, labels.get(p.name) or p.name, where_text(p.executor, p.worker),
              elapsed_text(p, now), _notes(p)) for p in phases]
    widths = [min(max((cell_len(row[i]) for row in cells), default=0), cap)
              for i, cap in ((1, max(8, width // 4)), (2, max(8, width // 5)), (3, 8),
                             (4, 20))]
    lines = []
    for p, label, where, elapsed, notes in cells:
        row = [paint(_symbol(p.status, frame, unicode), _STYLES.get(p.status, "")),
               paint(_fit(label, widths[0]), "bold" if p.status == "running" else ""),
               paint(_fit(where, widths[1]), "dim"),
               _fit(elapsed, widths[2], right=True),
               paint(_fit(notes, widths[3]), "dim")]
        room = width - 2 - sum(widths) - len(widths)
        last = _last_line(p)
        if room > 0 and last:
            row.append(paint(_fit(last, room, pad=False),
                             "red" if p.status == "failed" else "dim"))
        lines.append(" ".join(row).rstrip())
    hidden = len(state.phases) - len(phases)
    if hidden > 0:
        shown = {p.name for p in phases}
        counts = _counts(p.status for p in state.phases if p.name not in shown)
        lines.append(paint(_fit(f"  … and {hidden:,} more ({counts})", width, pad=False),
                           "dim"))
    lines.append(_bar(state, now, width, live, paint, unicode))
    return "\n".join(lines) + "\n"


def _bar(state: PipelineState, now: float, width: int, live: bool,
         paint: Callable[[str, str], str], unicode: bool) -> str:
    """The progress bar, the share done (by weight), the phases done, the time, the ETA."""
    done = sum(p.status in ("completed", "skipped") for p in state.phases)
    elapsed = max(0.0, now - state.started_at) if live and state.started_at else state.elapsed
    eta = (f" · ETA {short_duration(elapsed * (1 - state.progress) / state.progress)}"
           if 0 < state.progress < 1 else "")
    status = (f"{state.progress:4.0%}  {done}/{len(state.phases)} phases · "
              f"{short_duration(elapsed)}{eta}")
    room = max(0, width - len(status) - 1)
    filled = state.progress * room
    whole = int(filled)
    half = unicode and filled - whole >= 0.5
    full, rest = ("━", "━" if paint is _paint else "─") if unicode else ("#", "-")
    bar = paint(full * whole + ("╸" if half else ""),
                "red" if state.status == "failed" else "green")
    bar += paint(rest * (room - whole - (1 if half else 0)), "bright_black")
    return f"{bar} {status}"


def _fit(text: str, width: int, *, right: bool = False, pad: bool = True) -> str:
    """``text`` in ``width`` terminal columns: cut with an ellipsis, or padded."""
    from rich.cells import cell_len, set_cell_size

    text = printable(text)
    size = cell_len(text)
    if size > width:
        return set_cell_size(text, width - 1) + "…" if width > 0 else ""
    if not pad:
        return text
    return " " * (width - size) + text if right else text + " " * (width - size)


_SGR = {"dim": "2", "bold": "1", "bold blue": "1;34", "yellow": "33", "green": "32",
        "bold red": "1;31", "red": "31", "bright_black": "90", "dark_orange": "33"}


def _paint(text: str, style: str) -> str:
    code = _SGR.get(style)
    return f"\x1b[{code}m{text}\x1b[0m" if code and text else text


def _plain(text: str, style: str) -> str:
    return text


def _rows(state: PipelineState, order: Sequence[str] | None, finished: Sequence[str],
          room: int) -> list[PhaseStatus]:
    phases = list(state.phases)
    if order is not None:
        by_name, listed = {p.name: p for p in phases}, set(order)
        phases = [by_name[name] for name in order if name in by_name] + \
                 [p for p in phases if p.name not in listed]
    if len(phases) <= room:
        return phases
    chosen: dict[str, None] = {}
    for p in phases:  # first what needs an eye on it
        if p.status in ("failed", "running", "retrying") and len(chosen) < room:
            chosen[p.name] = None
    for name in reversed(finished):  # then the latest to end
        if len(chosen) >= room - 1:
            break
        chosen.setdefault(name, None)
    for p in phases:  # then the next to start
        if len(chosen) >= room:
            break
        if p.status == "pending":
            chosen.setdefault(p.name, None)
    return [p for p in phases if p.name in chosen]


def _symbol(status: str, frame: int, unicode: bool) -> str:
    if not unicode:
        return _ASCII.get(status, "?")
    if status == "running":
        return _SPINNER[frame % len(_SPINNER)]
    return _SYMBOLS.get(status, "?")


def _notes(p: PhaseStatus) -> str:
    notes = []
    if p.attempt > 1:
        notes.append(f"attempt {p.attempt}")
    if p.cached:
        notes.append("cached")
    return " ".join(notes)


def _last_line(p: PhaseStatus) -> str:
    if p.status in ("failed", "skipped", "cancelled", "retrying") and p.error:
        return p.error.strip().splitlines()[0] if p.error.strip() else ""
    return p.logs[-1].line if p.logs else ""


def _counts(statuses: Any) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n:,} {status}" for status, n in counts.items())


class LiveDisplay(ProgressReporter):
    """Draws the live region on ``stream`` (a terminal) for the first run it is shown,
    then writes the summary. ``show_output``: echo every captured line above it."""

    def __init__(self, stream: TextIO, *, show_output: bool = False,
                 opening: Sequence[str] = (), labels: Mapping[str, str] | None = None,
                 again: str = "", color: bool = True) -> None:
        super().__init__(stream, show_logs=False, opening=opening, labels=labels,
                         again=again)
        self._show_output = show_output
        self._color = color
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self._unicode = encoding in ("utf8", "utf16", "utf32")
        self._out: list[str] = []  # lines to write above the region at the next frame
        self._out_lock = threading.Lock()
        self._finished: deque[str] = deque(maxlen=64)
        self._colors: dict[str, str] = {}
        self._order: list[str] = []
        self._store: Store | None = None
        self._drawn = 0  # lines of the region on screen now
        self._frame = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused = False
        self._broken = False  # drawing failed: lines are written as they come
        self._dropped = 0  # lines not kept for the next frame (PENDING_LIMIT)

    @hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Store) -> None:
        if not self._follows(pipeline, starting=True):
            return
        self._labels = {p.name: p.label for p in pipeline.phases} | self._labels
        self._order = list(pipeline.execution_order())
        self._colors = {name: _PHASE_COLORS[i % len(_PHASE_COLORS)]
                        for i, name in enumerate(p.name for p in pipeline.phases)}
        self._store = store
        self._detach = self.attach(store)

    @hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        if not self._follows(pipeline):
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._write_frame(region="")  # wipe the region; what waits to be echoed goes
        super().phasewise_run_finish(pipeline, result, error)

    def _report(self, action: Action, store: Store) -> None:
        kind = action.type
        if kind == A.PHASE_LOG:
            if self._show_output:
                payload = action.payload
                name, line = payload.get("name", "?"), payload.get("line", "")
                stderr = payload.get("stream") == "stderr"
                echo = self._echo(name, line, stderr)
                with self._out_lock:
                    if self._broken:
                        self._stream.write(echo + "\n")
                    elif len(self._out) < PENDING_LIMIT:
                        self._out.append(echo)
                    else:  # nothing drew them for a long while (a review point waits)
                        self._dropped += 1
            return
        if kind == A.PIPELINE_START:
            self._started = True
            opening, self._opening = self._opening, ()
            with self._out_lock:
                self._out.extend(opening)
            self._thread = threading.Thread(target=self._draw_until_stopped,
                                            name="phasewise-live", daemon=True)
            self._thread.start()
        elif kind in _ENDINGS and isinstance(action.payload, Mapping):
            name = action.payload.get("name")
            if isinstance(name, str):
                self._finished.append(name)
                if action.payload.get("resumed"):
                    self.resumed.add(name)

    def _echo(self, name: str, line: str, stderr: bool) -> str:
        mark = "!" if stderr else "|"
        if not self._color:
            return f"{name} {mark} {line}"
        code = _ANSI.get(self._colors.get(name, ""), "36")
        return f"\x1b[{code}m{name} {mark}\x1b[0m {line}"

    def _draw_until_stopped(self) -> None:
        while not self._stop.wait(1 / FRAMES_PER_SECOND):
            try:
                with self._lock:
                    self._draw()
            except Exception as exc:  # a display must never take the run down
                with self._out_lock:  # from now on, lines are written as they come
                    self._broken = True
                    if self._out:
                        self._stream.write("\n".join(self._out) + "\n")
                        self._out = []
                warnings.warn(PhasewiseWarning(
                    f"the live display stopped drawing: {type(exc).__name__}: {exc}"),
                    stacklevel=2)
                return

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Wipe the region and draw nothing during the block (a prompt on the terminal:
        a review point); what phases print meanwhile is echoed after it."""
        with self._lock:
            self._write_frame(region="")
            self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def _draw(self) -> None:
        store = self._store
        if store is None or self._paused:
            return
        width, height = _terminal_size(self._stream)
        self._frame += 1
        region = render_region(
            store.state, width=width, height=max(3, height - 1), now=time.monotonic(),
            frame=self._frame, labels=self._labels, order=self._order,
            finished=tuple(self._finished), color=self._color, unicode=self._unicode)
        self._write_frame(region)

    def _write_frame(self, region: str) -> None:
        """Move back over the region drawn last, clear it, write the lines waiting to be
        echoed and then ``region`` — in one write."""
        with self._out_lock:
            out, self._out = self._out, []
            if self._dropped:
                out.append(f"… {self._dropped:,} more lines, not shown here")
                self._dropped = 0
        parts = []
        if self._drawn:
            parts.append(f"\r\x1b[{self._drawn}A\x1b[J")
        if out:
            parts.append("\n".join(out) + "\n")
        parts.append(region)
        self._stream.write("".join(parts))
        self._stream.flush()
        self._drawn = region.count("\n")


_ANSI = {"cyan": "36", "magenta": "35", "green": "32", "yellow": "33", "blue": "34",
         "bright_red": "91", "bright_cyan": "96", "bright_magenta": "95"}


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return max(20, size.columns), max(4, size.lines)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 80, 24
