"""The interactive detail view in a terminal: ``phasewise watch`` and ``phasewise run --tui``.

Both draw one Store whose reducer is ``make_detail_reducer`` (core/view.py) over a
pipeline reducer; every decision about what is selected, expanded, scrolled or followed
is that reducer's, and this module only lays its ``PipelineViewState`` out::

    keys:    tty ─▶ KeyDecoder ─▶ Key ─▶ Action("@@KEY") ─▶ view Store
    watch:   journal.jsonl, logs.jsonl ─▶ (polled, ≤ 10/s) ─▶ phase actions ─▶ view Store
    --tui:   the run's Store ─▶ store.observe ─▶ each action ─▶ view Store
    drawing: view Store.state ─▶ render_view ─▶ the terminal (≤ 10 frames/s, when the
             state changed, and once a second for the clocks of running phases)

``watch_workdir(workdir) -> int`` follows a run kept in a work directory, read-only, in
the terminal of stdin/stdout (exit 2 through ``BadInput`` when they are not one);
quitting never touches the run.

``DetailViewReporter(tty_in: int, tty_out: TextIO, *, max_logs: int | None = None)`` is
the ``run --tui`` reporter plugin: register it with the plugin manager for the length of
a run; it follows the first run it is shown, draws from a thread of its own on
``tty_out`` and reads keys from the file descriptor ``tty_in`` (both the same terminal;
``DetailViewReporter.for_terminal()`` uses stdin/stdout, or says why it cannot). q asks
"stop the run? [y/N]" while the run goes on; y interrupts it as Ctrl-C would. Once the
run has ended the view stays, and ``phasewise_run_finish`` waits, until q. The run's
output should be captured (``capture_output``): lines a phase prints straight to the
terminal would draw over the view until its next frame.

The terminal is in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still
interrupts) on the alternate screen while the view is up, and is put back on every way
out: q, Ctrl-C, an exception; a terminal that hangs up ends the view. Each frame is drawn
to the terminal's size at the time; how many lines of output the view scrolls by
(``PipelineViewState.log_height``) is set from its height when the view opens.
"""

from __future__ import annotations

import _thread
import atexit
import codecs
import io
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import msgspec
from rich.console import Console
from rich.text import Text

from phasewise.cli.palette import STATUS_STYLE
from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.state import PhaseStatus, PipelineState, make_reducer
from phasewise.core.store import Store
from phasewise.core.view import KEY, Key, PipelineViewState, Quit, SpecialKey, make_detail_reducer
from phasewise.plugins.markers import hookimpl
from phasewise.plugins.reporters import short_duration

__all__ = [
    "FRAME_INTERVAL",
    "SYMBOLS",
    "WATCH_MAX_LOGS",
    "DetailViewReporter",
    "KeyDecoder",
    "Terminal",
    "journal_action",
    "render_view",
    "watch_workdir",
]

FRAME_INTERVAL = 0.1
"""Seconds between two frames at least (and between two looks at a watched work
directory's files)."""

WATCH_MAX_LOGS = 1000
"""Lines kept per phase by ``phasewise watch`` (the newest)."""

_ESCAPE_WAIT = 0.05  # a lone ESC with nothing after it for this long is the Escape key

# ── keys ────────────────────────────────────────────────────────────────────

_CSI = {"A": SpecialKey.UP, "B": SpecialKey.DOWN, "C": SpecialKey.RIGHT,
        "D": SpecialKey.LEFT, "H": SpecialKey.HOME, "F": SpecialKey.END}
_SS3 = {**_CSI, "M": SpecialKey.ENTER}
_TILDE = {"1": SpecialKey.HOME, "7": SpecialKey.HOME, "4": SpecialKey.END,
          "8": SpecialKey.END, "5": SpecialKey.PAGE_UP, "6": SpecialKey.PAGE_DOWN}
_CONTROL = {"\r": SpecialKey.ENTER, "\n": SpecialKey.ENTER, "\t": SpecialKey.TAB,
            "\x7f": SpecialKey.BACKSPACE, "\x08": SpecialKey.BACKSPACE}


class KeyDecoder:
    """Turns the bytes a terminal sends into ``Key``s: UTF-8 characters, control keys
    (``Key(char="c", ctrl=True)`` for Ctrl-C's byte), Alt+key (ESC then the key), and the
    escape sequences of arrows, Home/End and Page Up/Down in both their CSI (``ESC [``)
    and SS3 (``ESC O``) forms, with xterm's modifiers (``ESC [1;5A`` is Ctrl+Up).

    ``feed`` returns the keys complete so far and keeps the start of a sequence cut off
    by the end of a read; a lone ESC may be the start of one, so it waits too, until
    ``flush`` (call it when nothing more has arrived for a moment) makes it Escape.
    """

    def __init__(self) -> None:
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def pending(self) -> bool:
        """Whether the start of a sequence waits for more bytes."""
        return bool(self._text)

    def feed(self, data: bytes) -> list[Key]:
        self._text += self._utf8.decode(data)
        return self._parse(final=False)

    def flush(self) -> list[Key]:
        """The keys still waiting, as they are (a lone ESC is Escape)."""
        return self._parse(final=True)

    def _parse(self, *, final: bool) -> list[Key]:
        text, keys, i = self._text, [], 0
        while i < len(text):
            if text[i] != "\x1b":
                keys.append(_single(text[i]))
                i += 1
                continue
            taken = _sequence(text, i, final)
            if taken is None:  # cut short: wait for the rest
                break
            key, i = taken
            if key is not None:
                keys.append(key)
        self._text = text[i:]
        return keys


def _single(char: str, alt: bool = False) -> Key:
    name = _CONTROL.get(char)
    if name is not None:
        return Key(name=name, alt=alt)
    if char < " ":
        return Key(char=chr(ord(char) + 96), ctrl=True, alt=alt)
    return Key(char=char, alt=alt)


def _sequence(text: str, i: int, final: bool) -> tuple[Key | None, int] | None:
    """The key of the escape sequence at ``text[i]`` (an ESC) and where the next one
    starts; None if it may be cut short and more bytes could follow."""
    rest = len(text) - i
    if rest == 1:
        return (Key(name=SpecialKey.ESCAPE), i + 1) if final else None
    kind = text[i + 1]
    if kind == "\x1b":
        return Key(name=SpecialKey.ESCAPE), i + 1
    if kind == "O":
        if rest == 2:
            return (Key(char="O", alt=True), i + 2) if final else None
        return Key(name=_SS3[text[i + 2]]) if text[i + 2] in _SS3 else None, i + 3
    if kind != "[":
        return _single(kind, alt=True), i + 2
    j = i + 2
    while j < len(text) and not ("@" <= text[j] <= "~"):
        j += 1
    if j == len(text):
        if final or j - i > 32:  # never completed: drop what cannot be a key
            return (Key(char="[", alt=True) if rest == 2 else None), len(text)
        return None
    return _csi(text[i + 2 : j], text[j]), j + 1


def _csi(params: str, end: str) -> Key | None:
    fields = params.split(";")
    try:
        modifiers = int(fields[1]) - 1 if len(fields) > 1 else 0
    except ValueError:
        modifiers = 0
    shift, alt, ctrl = bool(modifiers & 1), bool(modifiers & 2), bool(modifiers & 4)
    if end == "~":
        name = _TILDE.get(fields[0])
    elif end == "Z":
        name, shift = SpecialKey.TAB, True
    else:
        name = _CSI.get(end)
    return None if name is None else Key(name=name, shift=shift, alt=alt, ctrl=ctrl)


# ── drawing ─────────────────────────────────────────────────────────────────

SYMBOLS = {"pending": "·", "running": "▶", "retrying": "↻", "completed": "✓",
           "failed": "✗", "skipped": "»", "cancelled": "⊘"}

_KEYS_OVERVIEW = "↑↓ select · enter output · q quit"
_KEYS_EXPANDED = "↑↓ scroll · g/G top/bottom · f follow · esc back · q quit"


def render_view(view: PipelineViewState, *, width: int, height: int, now: float,
                note: str = "") -> list[Text]:
    """The screen for ``view``: ``height`` lines of at most ``width`` cells.

    A headline, one row per phase (a window of them around the selected one when they do
    not all fit), the selected phase's output under them when expanded, and a last line
    with ``note`` and the keys. ``now`` is the clock the state's start times were taken
    from, for the elapsed time of what still runs.
    """
    state, phases = view.pipeline, view.pipeline.phases
    lines = [_headline(state, now)]
    body = max(0, height - 2)
    panel: list[Text] = []
    if view.expanded and 0 <= view.selected_phase < len(phases):
        panel = _log_panel(phases[view.selected_phase], view, max(0, body - 1))
    rows = body - len(panel)
    first = _window(len(phases), view.selected_phase, rows)
    columns = _columns(phases, width)
    lines += [_row(phases[i], i == view.selected_phase, columns, now)
              for i in range(first, min(len(phases), first + rows))]
    lines += panel
    lines += [Text("") for _ in range(height - 1 - len(lines))]
    keys = _KEYS_EXPANDED if view.expanded else _KEYS_OVERVIEW
    footer = Text(note, style="bold") if note else Text("")
    footer.append(("   " if note else "") + keys, style="dim")
    lines.append(footer)
    for line in lines:
        line.truncate(width, overflow="crop")
        line.rstrip()
        line.no_wrap = True
    return lines[:height]


def _headline(state: PipelineState, now: float) -> Text:
    counts = state.counts()
    done = counts.get("completed", 0) + counts.get("skipped", 0)
    elapsed = (now - state.started_at if state.status == "running" and state.started_at
               else state.elapsed)
    line = Text(state.name or "pipeline", style="bold")
    line.append(" · ")
    line.append(state.status, style=STATUS_STYLE.get(state.status, ""))
    line.append(f" · {done}/{len(state.phases)} done ({state.progress:.0%})"
                f" · {short_duration(max(0.0, elapsed))}")
    failed = counts.get("failed", 0)
    if failed:
        line.append(f" · {failed} failed", style=STATUS_STYLE["failed"])
    return line


def _window(count: int, selected: int, rows: int) -> int:
    """The first phase row shown: all fit, or the selected one stays in the middle."""
    if count <= rows or rows <= 0:
        return 0
    return min(max(0, selected - rows // 2), count - rows)


def _where(phase: PhaseStatus) -> str:
    return f"{phase.executor} · {phase.worker}" if phase.worker else phase.executor


def _columns(phases: Sequence[PhaseStatus], width: int) -> tuple[int, int]:
    names = max((len(p.name) for p in phases), default=0)
    wheres = max((len(_where(p)) for p in phases), default=0)
    return min(names, max(8, width // 3)), min(wheres, 28)


def _row(phase: PhaseStatus, selected: bool, columns: tuple[int, int], now: float) -> Text:
    name_width, where_width = columns
    style = STATUS_STYLE.get(phase.status, "")
    row = Text("› " if selected else "  ", style="bold" if selected else "")
    row.append(f"{SYMBOLS.get(phase.status, '?')} ", style=style)
    name = phase.name if len(phase.name) <= name_width else phase.name[: name_width - 1] + "…"
    row.append(f"{name:<{name_width}}  ", style="bold reverse" if selected else "")
    row.append(f"{phase.status:<9}", style=style)
    row.append(f"  {_where(phase)[:where_width]:<{where_width}}  ", style="cyan")
    row.append(f"{_elapsed(phase, now):>7}")
    extra = []
    if phase.attempt > 1:
        extra.append(f"attempt {phase.attempt}")
    if phase.cached:
        extra.append("cached")
    if extra:
        row.append("  " + ", ".join(extra), style="yellow")
    error = phase.error.strip()
    if error and phase.status in ("failed", "retrying", "skipped", "cancelled"):
        row.append("  " + error.splitlines()[0], style=style)
    return row


def _elapsed(phase: PhaseStatus, now: float) -> str:
    if phase.status in ("running", "retrying") and phase.started_at:
        return short_duration(max(0.0, now - phase.started_at))
    if phase.status == "pending" or not (phase.elapsed or phase.started_at):
        return ""
    return short_duration(phase.elapsed)


def _log_panel(phase: PhaseStatus, view: PipelineViewState, room: int) -> list[Text]:
    """The title line and the lines the view has scrolled to, in ``room`` lines at most
    (when fewer than ``log_height`` fit, those nearest the newest when following)."""
    if room <= 0:
        return []
    logs = phase.logs
    window = logs[view.log_scroll : view.log_scroll + view.log_height]
    fit = room - 1
    skip = max(0, len(window) - fit) if view.auto_follow else 0
    shown = window[skip : skip + fit]
    if shown:
        first = view.log_scroll + skip + 1
        span = f"lines {first}-{first + len(shown) - 1} of {len(logs)}"
    else:
        span = "no output yet"
    title = Text(f"── {phase.name} · {span}", style="bold")
    title.append(" · following" if view.auto_follow else " · paused (f follows)",
                 style="green" if view.auto_follow else "yellow")
    title.append(" ──", style="bold")
    panel = [title]
    for entry in shown:
        stderr = entry.stream == "stderr"
        panel.append(Text(f"  {'!' if stderr else '|'} {entry.line}",
                          style="red" if stderr else ""))
    return panel


# ── the terminal ────────────────────────────────────────────────────────────


class Terminal:
    """A terminal taken over for the view: cbreak mode on ``fd_in``, the alternate screen
    and no cursor on ``out``, all put back by ``close`` (also at interpreter exit, should
    ``close`` never be reached)."""

    def __init__(self, fd_in: int, out: TextIO) -> None:
        self._fd, self._out = fd_in, out
        self._saved: list[Any] | None = None
        self._console = Console(file=io.StringIO(), force_terminal=True, highlight=False,
                                markup=False, emoji=False, width=10_000)
        self._lock = threading.Lock()

    def open(self) -> Terminal:
        self._saved = termios.tcgetattr(self._fd)
        atexit.register(self.close)
        tty.setcbreak(self._fd, termios.TCSANOW)
        self._write("\x1b[?1049h\x1b[?25l\x1b[2J")
        return self

    def close(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, None
            if saved is None:
                return
            atexit.unregister(self.close)
            try:
                self._write("\x1b[?25h\x1b[?1049l")
                termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            except (OSError, ValueError, termios.error):
                try:  # the output is gone (hung up, closed): the modes still go back
                    termios.tcsetattr(self._fd, termios.TCSANOW, saved)
                except termios.error:
                    pass  # so is the terminal: nothing is left to put back

    def __enter__(self) -> Terminal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def size(self) -> tuple[int, int]:
        try:
            columns, lines = os.get_terminal_size(self._out.fileno())
        except (OSError, ValueError):
            return 80, 24
        return max(columns, 20), max(lines, 5)

    def read(self, timeout: float) -> bytes:
        """What the keyboard sent, waiting up to ``timeout`` seconds (b"" if nothing);
        ``EOFError`` once the terminal is gone (hung up)."""
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self._fd, 1024)
        except OSError as exc:  # EIO: the terminal hung up
            raise EOFError(f"the terminal is gone ({exc.strerror})") from None
        if not data:
            raise EOFError("the terminal is gone")
        return data

    def draw(self, lines: Sequence[Text]) -> None:
        """Paint the whole screen, every line (lines may not reach the last column)."""
        with self._console.capture() as capture:
            self._console.print(Text("\n").join(lines), end="", soft_wrap=True)
        painted = "".join(f"\x1b[{n};1H{line}\x1b[K"
                          for n, line in enumerate(capture.get().split("\n"), start=1))
        self._write(f"\x1b[H{painted}\x1b[J")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


# ── the loop both views share ───────────────────────────────────────────────


class _ViewLoop:
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
                drawn, last_frame = (state, note, size), now
            wait = min(next_tick, last_frame + FRAME_INTERVAL) - time.monotonic()
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


def _log_height(rows: int, phases: int) -> int:
    """Lines of output the view shows at once, given the terminal's height."""
    return max(3, rows - 4 - min(phases, max(3, rows // 3)))


def _view_store(reducer: Callable[[Any, Action], Any], log_height: int) -> Store:
    initial = reducer(None, Action(A.INIT))
    return Store(reducer, initial_state=replace(initial, log_height=log_height))


# ── phasewise watch ─────────────────────────────────────────────────────────

_decode = msgspec.json.decode


def journal_action(record: Mapping[str, Any]) -> Action | None:
    """The Store action of one journal record (None for one that is not a transition).
    Times are the journal's own (seconds since the epoch)."""
    kind, at = record.get("k"), record.get("time", 0.0)
    if kind == "run":
        return Action(A.PIPELINE_START, at)
    if kind == "end":
        return Action(A.PIPELINE_COMPLETE, {"status": record.get("status"), "timestamp": at})
    if kind != "phase":
        return None
    name, status = record.get("phase", ""), record.get("status")
    payload: dict[str, Any] = {"name": name, "timestamp": at}
    if status == "running":
        payload.update(attempt=record.get("attempt", 1), executor=record.get("executor", ""),
                       worker=record.get("worker", ""))
        return Action(A.PHASE_START, payload)
    if status == "retrying":
        payload.update(attempt=record.get("attempt", 1), error=record.get("error", ""))
        return Action(A.PHASE_RETRY, payload)
    if status == "completed":
        payload.update(cached=bool(record.get("cached")))
        return Action(A.PHASE_COMPLETE, payload)
    types = {"failed": A.PHASE_FAILED, "skipped": A.PHASE_SKIPPED,
             "cancelled": A.PHASE_CANCELLED}
    if status not in types:
        return None
    payload["reason" if status == "cancelled" else "error"] = record.get("error", "")
    return Action(types[status], payload)


def _newest(lines: Iterable[Any], keep: int) -> list[Any]:
    """``lines`` without those that would be dropped anyway: the newest ``keep`` of each
    phase, in their order."""
    seen: dict[str, int] = {}
    out = []
    for line in reversed(list(lines)):
        count = seen.get(line.phase, 0)
        if count < keep:
            seen[line.phase] = count + 1
            out.append(line)
    out.reverse()
    return out


class _Follower:
    """The run kept in a work directory, followed: each ``poll`` turns what its journal
    and log file gained since into actions of ``store`` (a new one when the directory's
    journal is replaced by a new run's)."""

    def __init__(self, workdir: Any, log_height: Callable[[int], int]) -> None:
        self._workdir, self._log_height = workdir, log_height
        self.store: Store
        self.pid = 0
        self._load()

    def _load(self) -> None:
        from phasewise.durable.resume import load_ledger

        ledger = load_ledger(self._workdir)
        names = list(ledger.phases)
        self._names = frozenset(names)
        reducer = make_detail_reducer(make_reducer(
            ledger.pipeline, names,
            {n: float(p.get("weight", 1)) for n, p in ledger.phases.items()},
            dict.fromkeys(names, WATCH_MAX_LOGS)))
        self.store = _view_store(reducer, self._log_height(len(names)))
        self.journal_id, self.pid = ledger.journal, ledger.pid
        self._journal_at = self._logs_at = 0

    def poll(self) -> None:
        from phasewise.durable.logs import read_logs

        header = self._journal_header()
        if header is not None and header != self.journal_id:
            self._load()  # a new run in this directory
        for record in self._journal_records():
            if record.get("k") == "run":
                self.pid = int(record.get("pid", 0))
            action = journal_action(record)
            if action is not None and (record.get("k") != "phase"
                                       or record.get("phase") in self._names):
                self.store.dispatch(action)
        lines, self._logs_at = read_logs(self._workdir.logs_file, self._logs_at)
        for line in _newest(lines, WATCH_MAX_LOGS):
            if line.phase in self._names:
                self.store.dispatch(Action(A.PHASE_LOG, {
                    "name": line.phase, "line": line.line, "stream": line.stream,
                    "timestamp": line.time}))

    def _journal_header(self) -> str | None:
        try:
            with open(self._workdir.journal_file, "rb") as f:
                return str(_decode(f.readline())["id"])
        except (OSError, msgspec.DecodeError, KeyError, TypeError):
            return None

    def _journal_records(self) -> list[dict[str, Any]]:
        """The complete records after the last ones read (header skipped)."""
        try:
            with open(self._workdir.journal_file, "rb") as f:
                if self._journal_at == 0:
                    f.readline()
                    self._journal_at = f.tell()
                f.seek(self._journal_at)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._journal_at += end
        records = []
        for raw in data[:end].split(b"\n"):
            try:
                record = _decode(raw) if raw else None
            except msgspec.DecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def note(self) -> str:
        from phasewise.cli.status import is_alive

        status = self.store.state.pipeline.status
        if status == "running" and self.pid and not is_alive(self.pid):
            return f"the run's process {self.pid} is gone"
        if status in ("completed", "failed", "cancelled"):
            return f"the run {status}"
        return ""


def watch_workdir(workdir: Path) -> int:
    """Follow the run kept in ``workdir`` in this terminal until q (or Ctrl-C: 130).
    Read-only: nothing in the work directory is changed, and quitting leaves the run be."""
    from phasewise.cli.main import BadInput
    from phasewise.core.errors import UnsafeStoreError, WorkdirError
    from phasewise.durable.workdir import Workdir

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput("phasewise watch draws in a terminal, and its stdin and stdout are "
                       "not both one; to print the run's state once, use phasewise status")
    terminal = Terminal(sys.stdin.fileno(), sys.stdout)
    rows = terminal.size()[1]
    try:
        follower = _Follower(Workdir(workdir), lambda phases: _log_height(rows, phases))
    except (WorkdirError, UnsafeStoreError) as exc:
        raise BadInput(str(exc)) from None
    loop = _ViewLoop(terminal, lambda: follower.store, time.time, note=follower.note,
                     tick=follower.poll)
    try:
        with terminal:
            loop.run()
    except KeyboardInterrupt:
        return 130
    return 0


# ── phasewise run --tui ─────────────────────────────────────────────────────


class DetailViewReporter:
    """The detail view of a live run, as a reporter plugin (see the module docstring).

    ``tty_in``: the file descriptor keys are read from; ``tty_out``: where the view is
    drawn; ``max_logs``: lines kept per phase (default: each phase's ``max_logs``).
    """

    def __init__(self, tty_in: int, tty_out: TextIO, *, max_logs: int | None = None) -> None:
        self._in, self._out, self._max_logs = tty_in, tty_out, max_logs
        self._pipeline: Any = None
        self._store: Store | None = None
        self._reducer: Callable[[Any, Action], Any] = lambda state, action: state
        self._loop: _ViewLoop | None = None
        self._thread: threading.Thread | None = None
        self._unobserve: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._ended = ""  # how the run ended, once it has
        self._asking = False
        self.failure: BaseException | None = None
        """What broke the view's thread, if something did (the run goes on without it)."""

    @classmethod
    def for_terminal(cls, **options: Any) -> DetailViewReporter:
        """A reporter on the terminal of stdin and stdout; ``BadInput`` if there is none."""
        from phasewise.cli.main import BadInput

        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise BadInput("--tui draws in a terminal, and stdin and stdout are not both "
                           "one; leave --tui out")
        return cls(sys.stdin.fileno(), sys.stdout, **options)

    @hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Store) -> None:
        if self._pipeline is not None:
            return  # follows the first run only (a pipeline one of its phases runs, say)
        self._pipeline = pipeline
        order = pipeline.execution_order()
        reducer = make_detail_reducer(make_reducer(
            pipeline.name, order, {p.name: p.weight for p in pipeline.phases},
            {p.name: self._max_logs or p.max_logs for p in pipeline.phases}))
        terminal = Terminal(self._in, self._out)
        view = self._store = _view_store(reducer, _log_height(terminal.size()[1], len(order)))
        self._reducer = reducer
        self._loop = _ViewLoop(terminal, lambda: view, time.monotonic, note=self._note,
                               before_key=self._before_key)
        terminal.open()
        self._unobserve = store.observe(self._forward)
        self._thread = threading.Thread(target=self._run, name="phasewise-tui", daemon=True)
        self._thread.start()

    @hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        """Once the run has ended on its own, wait for q; else close the view at once."""
        if pipeline is not self._pipeline or self._loop is None:
            return
        self._unobserve()
        with self._lock:
            self._ended = "interrupted" if result.interrupted else result.status
        if error is not None:
            self._loop.stop.set()
        self._loop.redraw.set()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.2)
        except KeyboardInterrupt:  # Ctrl-C on the finished view: as q
            self._loop.stop.set()
        finally:
            self._loop.terminal.close()

    def _forward(self, action: Action) -> None:
        """Each action of the run into the view's Store: the view never breaks the run."""
        if self._store is None or self.failure is not None:
            return
        try:
            self._store.dispatch(action)
        except Exception as exc:
            self.failure = exc

    def _run(self) -> None:
        assert self._loop is not None
        try:
            self._loop.run()
        except BaseException as exc:
            self.failure = exc
            self._loop.terminal.close()
            self._out.write(f"phasewise: the detail view stopped: {exc!r}\n")
            self._out.flush()
        finally:
            self._loop.terminal.close()

    def _note(self) -> str:
        if self._asking:
            return "stop the run? [y/N]"
        if self._ended:
            return f"the run {self._ended} · q quits"
        return ""

    def _before_key(self, key: Key) -> bool:
        """While the run goes on, a key that would quit asks first; y interrupts the run."""
        assert self._store is not None and self._loop is not None
        if self._asking:
            self._asking = False
            if key.char in ("y", "Y"):
                with self._lock:
                    self._loop.stop.set()
                    if not self._ended:  # else it ended meanwhile: y only quits
                        self._loop.terminal.close()
                        _thread.interrupt_main()
            return True
        if not self._ended and isinstance(
                self._reducer(self._store.state, Action(KEY, key)), Quit):
            self._asking = True
            return True
        return False
