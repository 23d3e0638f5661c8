"""The interactive detail view (cli/tui/): key decoding, the screens drawn from recorded
action sequences, and — in a real terminal driven through tmux — ``phasewise watch``
following a run in progress, and ``DetailViewReporter`` over a live run."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from rich.cells import cell_len

from phasewise import Phase, Pipeline
from phasewise.cli.tui import KeyDecoder, Terminal, journal_action, render_view
from phasewise.cli.tui.loop import ViewLoop, view_store
from phasewise.cli.tui.watch import _Follower
from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.state import make_reducer
from phasewise.core.store import Store
from phasewise.core.view import KEY, Key, PipelineViewState, SpecialKey, make_detail_reducer
from phasewise.durable.journal import read_journal
from phasewise.durable.workdir import Workdir

pytestmark = pytest.mark.timeout(60)

UP, DOWN, ENTER, ESCAPE = (Key(name=SpecialKey.UP), Key(name=SpecialKey.DOWN),
                           Key(name=SpecialKey.ENTER), Key(name=SpecialKey.ESCAPE))

# ── keys ────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("data", "keys"), [
    (b"\x1b[A\x1b[B\x1b[C\x1b[D", [UP, DOWN, Key(name=SpecialKey.RIGHT),
                                   Key(name=SpecialKey.LEFT)]),
    (b"\x1bOA\x1bOB\x1bOH\x1bOF\x1bOM", [UP, DOWN, Key(name=SpecialKey.HOME),
                                        Key(name=SpecialKey.END), ENTER]),
    (b"\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[7~\x1b[8~",
     [Key(name=SpecialKey.HOME), Key(name=SpecialKey.END)] * 3),
    (b"\x1b[5~\x1b[6~", [Key(name=SpecialKey.PAGE_UP), Key(name=SpecialKey.PAGE_DOWN)]),
    (b"\x1b[1;5A\x1b[1;2B\x1b[1;3C", [Key(name=SpecialKey.UP, ctrl=True),
                                      Key(name=SpecialKey.DOWN, shift=True),
                                      Key(name=SpecialKey.RIGHT, alt=True)]),
    (b"\x1b[Z", [Key(name=SpecialKey.TAB, shift=True)]),
    (b"\r\n\t\x7f\x08", [ENTER, ENTER, Key(name=SpecialKey.TAB),
                         Key(name=SpecialKey.BACKSPACE), Key(name=SpecialKey.BACKSPACE)]),
    (b"gGfq ", [Key(char=c) for c in "gGfq "]),
    (b"\x03\x01", [Key(char="c", ctrl=True), Key(char="a", ctrl=True)]),
    (b"\x1bx", [Key(char="x", alt=True)]),
    (b"\x1b\x1b[A", [ESCAPE, UP]),
    ("é→".encode(), [Key(char="é"), Key(char="→")]),
    (b"\x1b[3~q", [Key(char="q")]),  # Delete: no such key in the view, dropped
])
def test_decoder_turns_bytes_into_keys(data: bytes, keys: list[Key]) -> None:
    decoder = KeyDecoder()
    assert decoder.feed(data) == keys
    assert not decoder.pending


def test_decoder_keeps_a_sequence_cut_by_the_end_of_a_read() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"q\x1b[") == [Key(char="q")]
    assert decoder.pending
    assert decoder.feed(b"1;5") == []
    assert decoder.feed(b"B\x1bO") == [Key(name=SpecialKey.DOWN, ctrl=True)]
    assert decoder.feed(b"A") == [UP]
    assert decoder.feed("é".encode()[:1]) == []  # half a character
    assert decoder.feed("é".encode()[1:]) == [Key(char="é")]


def test_a_lone_escape_is_escape_once_flushed() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"\x1b") == []
    assert decoder.pending
    assert decoder.flush() == [ESCAPE]
    assert not decoder.pending
    assert decoder.flush() == []


def test_decoded_keys_drive_the_detail_reducer() -> None:
    store = _store(["a", "b"], [Action(A.PHASE_LOG, {"name": "b", "line": "hi"})])
    for key in KeyDecoder().feed(b"\x1b[B\n"):
        store.dispatch(Action(KEY, key))
    assert (store.state.selected_phase, store.state.expanded) == (1, True)
    store.dispatch(Action(KEY, KeyDecoder().feed(b"q")[0]))
    assert store.quit_requested


# ── journal records to actions ──────────────────────────────────────────────


def test_journal_records_become_the_stores_actions() -> None:
    records = [
        {"k": "run", "run": "r", "pid": 7, "resume": False, "time": 100.0},
        {"k": "phase", "phase": "a", "status": "running", "time": 101.0, "attempt": 1,
         "started": 101.0, "error": "", "executor": "process", "worker": "pid 9"},
        {"k": "phase", "phase": "a", "status": "retrying", "time": 102.0, "attempt": 2,
         "error": "flaky"},
        {"k": "phase", "phase": "a", "status": "completed", "time": 104.0, "cached": False,
         "error": "", "result": None},
        {"k": "phase", "phase": "b", "status": "completed", "time": 104.5, "cached": True},
        {"k": "phase", "phase": "c", "status": "failed", "time": 105.0, "error": "boom"},
        {"k": "phase", "phase": "d", "status": "skipped", "time": 105.0, "error": "no"},
        {"k": "phase", "phase": "e", "status": "cancelled", "time": 105.0, "error": "stop"},
        {"k": "end", "status": "failed", "time": 106.0},
        {"k": "something new"},
    ]
    actions = [journal_action(r) for r in records]
    assert actions == [
        Action(A.PIPELINE_START, 100.0),
        Action(A.PHASE_START, {"name": "a", "timestamp": 101.0, "attempt": 1,
                               "executor": "process", "worker": "pid 9"}),
        Action(A.PHASE_RETRY, {"name": "a", "timestamp": 102.0, "attempt": 2,
                               "error": "flaky"}),
        Action(A.PHASE_COMPLETE, {"name": "a", "timestamp": 104.0, "cached": False}),
        Action(A.PHASE_COMPLETE, {"name": "b", "timestamp": 104.5, "cached": True}),
        Action(A.PHASE_FAILED, {"name": "c", "timestamp": 105.0, "error": "boom"}),
        Action(A.PHASE_SKIPPED, {"name": "d", "timestamp": 105.0, "error": "no"}),
        Action(A.PHASE_CANCELLED, {"name": "e", "timestamp": 105.0, "reason": "stop"}),
        Action(A.PIPELINE_COMPLETE, {"status": "failed", "timestamp": 106.0}),
        None,
    ]


# ── the screen, from recorded actions ───────────────────────────────────────


def _store(names: Sequence[str], actions: Sequence[Action], log_height: int = 4) -> Store:
    reducer = make_detail_reducer(make_reducer(
        "build", names, dict.fromkeys(names, 1.0), dict.fromkeys(names, 200)))
    store = view_store(reducer, log_height)
    for action in actions:
        store.dispatch(action)
    return store


def _keys(store: Store, *keys: Key) -> PipelineViewState:
    for key in keys:
        store.dispatch(Action(KEY, key))
    state: PipelineViewState = store.state
    return state


def _screen(view: PipelineViewState, width: int = 72, height: int = 10,
            now: float = 110.0, note: str = "") -> list[str]:
    lines = render_view(view, width=width, height=height, now=now, note=note)
    assert len(lines) == height
    assert all(cell_len(line.plain) <= width for line in lines)
    return [line.plain for line in lines]


def _log(name: str, line: str, stream: str = "stdout") -> Action:
    return Action(A.PHASE_LOG, {"name": name, "line": line, "stream": stream,
                                "timestamp": 0.0})


RUN = [
    Action(A.PIPELINE_START, 100.0),
    Action(A.PHASE_START, {"name": "fetch", "timestamp": 100.0, "executor": "process",
                           "worker": "pid 4242"}),
    *[_log("fetch", f"fetched part {i}") for i in range(1, 7)],
    _log("fetch", "warning: slow mirror", "stderr"),
    Action(A.PHASE_COMPLETE, {"name": "fetch", "timestamp": 101.5}),
    Action(A.PHASE_COMPLETE, {"name": "deps", "timestamp": 101.6, "cached": True}),
    Action(A.PHASE_START, {"name": "compile", "timestamp": 102.0, "executor": "thread"}),
    Action(A.PHASE_RETRY, {"name": "compile", "timestamp": 103.0, "attempt": 2,
                           "error": "compiler crashed\nsecond line"}),
    Action(A.PHASE_START, {"name": "compile", "timestamp": 104.0, "attempt": 2,
                           "executor": "thread"}),
]
NAMES = ["fetch", "deps", "compile", "test"]


def test_overview_one_row_per_phase() -> None:
    assert _screen(_store(NAMES, RUN).state) == [
        "build · running · 2/4 done (50%) · 10.0s",
        "› ✓ fetch    completed  process · pid 4242     1.5s",
        "  ✓ deps     completed                               cached",
        "  ▶ compile  running    thread                 6.0s  attempt 2",
        "  · test     pending",
        "",
        "",
        "",
        "",
        "↑↓ select · enter output · q quit",
    ]


def test_expanded_shows_the_newest_lines_while_following() -> None:
    view = _keys(_store(NAMES, RUN), ENTER)
    assert _screen(view, height=11) == [
        "build · running · 2/4 done (50%) · 10.0s",
        "› ✓ fetch    completed  process · pid 4242     1.5s",
        "  ✓ deps     completed                               cached",
        "  ▶ compile  running    thread                 6.0s  attempt 2",
        "  · test     pending",
        "── fetch · lines 4-7 of 7 · following ──",
        "  | fetched part 4",
        "  | fetched part 5",
        "  | fetched part 6",
        "  ! warning: slow mirror",
        "↑↓ scroll · g/G top/bottom · f follow · esc back · q quit",
    ]


def test_escape_sequences_a_phase_prints_are_not_drawn() -> None:
    colored = [*RUN[:2], _log("fetch", "\x1b[2J\x1b[31mred\x1b[0m text\x1b]0;title\x07")]
    view = _keys(_store(NAMES, colored), ENTER)
    lines = render_view(view, width=72, height=11, now=110.0, note="")
    assert "  | red text" in [line.plain for line in lines]
    assert not any("\x1b" in line.plain for line in lines)


def test_scrolling_up_pauses_and_g_goes_to_the_top() -> None:
    store = _store(NAMES, RUN)
    up = _screen(_keys(store, ENTER, UP, UP), height=11)[5:10]
    assert up == [
        "── fetch · lines 2-5 of 7 · paused (f follows) ──",
        "  | fetched part 2",
        "  | fetched part 3",
        "  | fetched part 4",
        "  | fetched part 5",
    ]
    top = _screen(_keys(store, Key(char="g")), height=11)[5:7]
    assert top == ["── fetch · lines 1-4 of 7 · paused (f follows) ──", "  | fetched part 1"]
    bottom = _screen(_keys(store, Key(char="G")), height=11)[5:7]
    assert bottom == ["── fetch · lines 4-7 of 7 · paused (f follows) ──",
                      "  | fetched part 4"]
    follow = _screen(_keys(store, Key(char="g"), Key(char="f")), height=11)[5]
    assert follow == "── fetch · lines 4-7 of 7 · following ──"


def test_following_shows_new_lines_as_they_arrive() -> None:
    store = _store(NAMES, RUN)
    _keys(store, DOWN, DOWN, ENTER)
    assert _screen(store.state, height=11)[5:10] == [
        "── compile · no output yet · following ──", "", "", "", ""]
    for n in range(1, 7):
        store.dispatch(_log("compile", f"compiling unit {n}"))
    assert _screen(store.state, height=11)[5:10] == [
        "── compile · lines 3-6 of 6 · following ──",
        "  | compiling unit 3",
        "  | compiling unit 4",
        "  | compiling unit 5",
        "  | compiling unit 6",
    ]
    assert _screen(_keys(store, ESCAPE), height=11)[5:] == ["", "", "", "", "",
                                                           "↑↓ select · enter output · q quit"]


def test_a_failed_run_shows_errors_and_the_note() -> None:
    store = _store(NAMES, [
        *RUN,
        Action(A.PHASE_FAILED, {"name": "compile", "timestamp": 105.5,
                                "error": "ValueError: bad input\nTraceback ..."}),
        Action(A.PHASE_CANCELLED, {"name": "test", "reason": "a dependency failed",
                                   "timestamp": 105.5}),
        Action(A.PIPELINE_COMPLETE, {"status": "failed", "timestamp": 106.0}),
    ])
    assert _screen(store.state, width=90, height=6, note="the run failed") == [
        "build · failed · 2/4 done (50%) · 6.0s · 1 failed",
        "› ✓ fetch    completed  process · pid 4242     1.5s",
        "  ✓ deps     completed                               cached",
        "  ✗ compile  failed     thread                 1.5s  attempt 2  ValueError: bad input",
        "  ⊘ test     cancelled                               a dependency failed",
        "the run failed   ↑↓ select · enter output · q quit",
    ]


def test_many_phases_keep_the_selected_one_in_view_and_lines_are_cropped() -> None:
    names = [f"phase-{n:02d}" for n in range(30)]
    store = _store(names, [Action(A.PIPELINE_START, 100.0)])
    _keys(store, *[DOWN] * 12)
    screen = _screen(store.state, width=30, height=7)
    assert screen == [
        "build · running · 0/30 done (0",
        "  · phase-10  pending",
        "  · phase-11  pending",
        "› · phase-12  pending",
        "  · phase-13  pending",
        "  · phase-14  pending",
        "↑↓ select · enter output · q q",
    ]
    _keys(store, Key(name=SpecialKey.END))
    assert _screen(store.state, width=30, height=7)[1:6] == [
        f"{'›' if n == 29 else ' '} · phase-{n}  pending" for n in range(25, 30)]


def test_a_short_terminal_keeps_the_newest_lines_of_a_taller_window() -> None:
    store = _store(["only"], [_log("only", f"line {n}") for n in range(10)], log_height=6)
    _keys(store, ENTER)
    assert _screen(store.state, height=6)[1:5] == [
        "› · only  pending",
        "── only · lines 9-10 of 10 · following ──",
        "  | line 8",
        "  | line 9",
    ]


# ── following a work directory (no terminal needed) ─────────────────────────


def _printing_pipeline(name: str = "kept") -> Pipeline:
    def shout() -> int:
        print("one")
        print("two", file=sys.stderr)
        return 1

    return Pipeline(name, Phase("shout", shout), Phase("quiet", lambda: 2,
                                                      depends_on=["shout"]),
                    capture_output=True)


def test_the_follower_replays_a_kept_run_and_its_output(tmp_path: Path) -> None:
    _printing_pipeline().run(workdir=tmp_path / "wd")
    follower = _Follower(Workdir(tmp_path / "wd"), lambda phases: 5)
    follower.poll()
    state = follower.store.state.pipeline
    assert state.status == "completed"
    assert [(p.name, p.status) for p in state.phases] == [("shout", "completed"),
                                                          ("quiet", "completed")]
    assert [(log.line, log.stream) for log in state.phase("shout").logs] == [
        ("one", "stdout"), ("two", "stderr")]
    assert follower.note() == "the run completed"
    before = follower.store.state
    follower.poll()  # nothing new: the same state
    assert follower.store.state is before


def test_the_follower_starts_over_when_a_new_run_replaces_the_journal(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "wd"
    _printing_pipeline().run(workdir=workdir)
    follower = _Follower(Workdir(workdir), lambda phases: 5)
    follower.poll()
    first_journal = follower.journal_id
    Pipeline("kept", Phase("other", lambda: 3)).run(workdir=workdir)
    follower.poll()
    assert follower.journal_id != first_journal
    follower.poll()
    state = follower.store.state.pipeline
    assert [(p.name, p.status) for p in state.phases] == [("other", "completed")]
    assert len(list(read_journal(workdir / "journal.jsonl"))) > 0


# ── a real terminal ─────────────────────────────────────────────────────────


def test_the_terminal_is_put_back_when_the_view_raises() -> None:
    """A pseudo-terminal: cbreak and the alternate screen while the loop runs, and its
    modes as they were after the loop raised."""
    master, slave = os.openpty()
    out = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    try:
        before = termios.tcgetattr(slave)
        store = _store(NAMES, RUN)
        seen: list[int] = []

        def broken_tick() -> None:
            seen.append(termios.tcgetattr(slave)[3])
            raise RuntimeError("the files could not be read")

        terminal = Terminal(slave, out)
        loop = ViewLoop(terminal, lambda: store, time.time, tick=broken_tick)
        with pytest.raises(RuntimeError, match="could not be read"), terminal:
            loop.run()
        assert seen and not seen[0] & (termios.ICANON | termios.ECHO)
        assert termios.tcgetattr(slave) == before
        written = b""
        while select.select([master], [], [], 0.5)[0]:
            written += os.read(master, 65536)
        assert written.startswith(b"\x1b[?1049h\x1b[?25l")
        assert written.endswith(b"\x1b[?25h\x1b[?1049l")
    finally:
        out.close()
        os.close(slave)
        os.close(master)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed: the terminal tests drive a "
                                       "real terminal through it")
WAIT = 30.0  # seconds a screen may take to show what a test waits for
TTY_MODES = "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo"


class Tmux:
    """One tmux server of its own (its own socket), one 100×30 session."""

    def __init__(self) -> None:
        self.socket = f"phasewise-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=20, check=False)

    def start(self, command: Sequence[str], cwd: Path) -> None:
        """Run ``command`` in the terminal; then its exit code and the terminal's modes
        (``TTY: icanon echo`` once put back), and the pane stays for the test to read."""
        shell = (f"{shlex.join(command)}; echo EXIT=$?; echo TTY: $({TTY_MODES}); "
                 "exec sleep 600")
        done = self._tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30",
                          "-c", str(cwd), shell)
        assert done.returncode == 0, done.stderr

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t").stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, shown: Callable[[str], bool], what: str) -> str:
        """The screen once ``shown(screen)``; fails naming ``what`` after WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if shown(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed {what}:\n{screen}")
            time.sleep(0.05)

    def wait_text(self, *texts: str) -> str:
        return self.wait_for(lambda s: all(t in s for t in texts), " and ".join(texts))

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    terminal = Tmux()
    try:
        yield terminal
    finally:
        terminal.close()


def _row(screen: str, name: str) -> str:
    """The screen line of phase ``name``'s row."""
    for line in screen.splitlines():
        if re.match(rf"^[› ] \S {re.escape(name)}\s", line):
            return line
    return ""


def _restored(screen: str) -> bool:
    return "TTY: icanon echo" in screen


WATCHED = """\
    import time
    from pathlib import Path

    from phasewise import Phase, Pipeline

    HERE = Path(__file__).parent


    def first():
        print("first says hello")
        return 1


    def waiter():
        for n in range(3):
            print(f"waiting line {n}", flush=True)
        said_more = False
        while not (HERE / "gate").exists():
            if not said_more and (HERE / "more").exists():
                print("more arrived", flush=True)
                said_more = True
            time.sleep(0.02)
        print("gate opened")
        return 2


    pipeline = Pipeline("watched", Phase("first", first),
                        Phase("waiter", waiter, depends_on=["first"]),
                        Phase("last", lambda: 3, depends_on=["waiter"]))
"""


def _wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


@pytest.mark.timeout(30)
def test_the_view_ends_when_its_terminal_hangs_up() -> None:
    master, slave = os.openpty()
    out = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    try:
        store = _store(NAMES, RUN)
        terminal = Terminal(slave, out)
        with terminal:
            os.close(master)
            master = -1
            ViewLoop(terminal, lambda: store, time.time).run()  # returns: nobody looks
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(slave)
        if master >= 0:
            os.close(master)


@needs_tmux
@pytest.mark.timeout(120)
def test_watch_follows_a_run_in_progress_and_q_leaves_it_running(
    tmux: Tmux, tmp_path: Path, phasewise_cmd: list[str],
) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(WATCHED), encoding="utf-8")
    wd = tmp_path / "wd"
    with open(tmp_path / "run.out", "wb") as out:
        run = subprocess.Popen([*phasewise_cmd, "run", "pipe.py", "--workdir", str(wd),
                                "--capture"], cwd=tmp_path, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        logs = wd / "logs.jsonl"
        _wait_until(lambda: logs.exists() and b"waiting line 2" in logs.read_bytes(),
                    "the run printed its waiting lines")
        tmux.start([*phasewise_cmd, "watch", "--workdir", str(wd)], tmp_path)
        screen = tmux.wait_for(lambda s: "running" in _row(s, "waiter"), "waiter running")
        assert "watched · running" in screen
        assert "completed" in _row(screen, "first") and "thread" in _row(screen, "first")
        assert "pending" in _row(screen, "last")
        assert _row(screen, "first").startswith("›")

        tmux.keys("Down", "Enter")
        screen = tmux.wait_text("── waiter · lines 1-3 of 3 · following", "| waiting line 2")
        assert _row(screen, "waiter").startswith("›")
        assert "| waiting line 0" in screen and "first says hello" not in screen

        (tmp_path / "more").touch()  # the phase prints a new line while it is watched
        tmux.wait_text("| more arrived", "lines 1-4 of 4")

        tmux.keys("Escape")
        tmux.wait_for(lambda s: "── waiter" not in s, "the output collapsed")
        tmux.keys("q")
        screen = tmux.wait_for(_restored, "the watch ended and the terminal put back")
        assert "EXIT=0" in screen
        assert run.poll() is None, "quitting the watch stopped the run"
        (tmp_path / "gate").touch()
        assert run.wait(timeout=60) == 0
        output = (tmp_path / "run.out").read_text(encoding="utf-8")
        assert "gate opened" in output and "completed" in output
    finally:
        (tmp_path / "gate").touch()
        _stop(run)


@needs_tmux
@pytest.mark.timeout(90)
def test_watch_of_an_ended_run_says_so_and_ctrl_c_puts_the_terminal_back(
    tmux: Tmux, tmp_path: Path, phasewise_cmd: list[str],
) -> None:
    _printing_pipeline("ended").run(workdir=tmp_path / "wd")
    tmux.start([*phasewise_cmd, "watch", "--workdir", "wd"], tmp_path)
    screen = tmux.wait_text("the run completed", "ended · completed · 2/2 done")
    assert "completed" in _row(screen, "shout")
    tmux.keys("Enter")
    tmux.wait_text("| one", "! two")
    tmux.keys("C-c")
    screen = tmux.wait_for(_restored, "the terminal put back after Ctrl-C")
    assert "EXIT=130" in screen


@needs_tmux
@pytest.mark.timeout(90)
def test_watch_of_a_directory_without_a_run_is_an_error(
    tmux: Tmux, tmp_path: Path, phasewise_cmd: list[str],
) -> None:
    (tmp_path / "empty").mkdir()
    tmux.start([*phasewise_cmd, "watch", "--workdir", "empty"], tmp_path)
    screen = tmux.wait_for(_restored, "the watch ended")
    assert "EXIT=2" in screen and "no run is recorded" in screen


def test_watch_without_a_terminal_exits_2(tmp_path: Path, phasewise_cmd: list[str]) -> None:
    _printing_pipeline().run(workdir=tmp_path / "wd")
    done = subprocess.run([*phasewise_cmd, "watch", "--workdir", "wd"], cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "Error: phasewise watch draws in a terminal" in done.stderr
    assert done.stdout == ""


LIVE = """\
    import sys
    import time
    from pathlib import Path

    from phasewise import Phase, Pipeline, Store
    from phasewise.cli.tui import DetailViewReporter
    from phasewise.plugins.manager import plugin_manager

    GATE = Path(sys.argv[1])


    def first():
        print("first says hello")


    def waiter():
        print("waiting for the gate", flush=True)
        while not GATE.exists():
            time.sleep(0.02)
        print("gate opened")


    pipeline = Pipeline("live", Phase("first", first),
                        Phase("waiter", waiter, depends_on=["first"]), capture_output=True)
    store = Store(pipeline.build_reducer())
    reporter = DetailViewReporter(sys.stdin.fileno(), sys.stdout)
    manager = plugin_manager()
    manager.register(reporter, name="detail-view")
    try:
        result = pipeline.run(store=store)
        print("RESULT", result.status)
    except KeyboardInterrupt:
        print("INTERRUPTED", store.state.phase("waiter").status)
    finally:
        manager.unregister(reporter)
        GATE.touch()
"""


def _start_live(tmux: Tmux, tmp_path: Path) -> Path:
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(LIVE), encoding="utf-8")
    gate = tmp_path / "gate"
    tmux.start([sys.executable, str(script), str(gate)], tmp_path)
    tmux.wait_for(lambda s: "running" in _row(s, "waiter"), "waiter running")
    return gate


@needs_tmux
@pytest.mark.timeout(120)
def test_run_view_q_then_n_goes_on_and_the_view_stays_after_the_run(
    tmux: Tmux, tmp_path: Path,
) -> None:
    gate = _start_live(tmux, tmp_path)
    try:
        tmux.keys("Down", "Enter")
        tmux.wait_text("── waiter · lines 1-1 of 1", "| waiting for the gate")
        tmux.keys("q")
        tmux.wait_text("stop the run? [y/N]")
        tmux.keys("n")
        screen = tmux.wait_for(lambda s: "stop the run?" not in s, "the question gone")
        assert "running" in _row(screen, "waiter") and "RESULT" not in screen
        gate.touch()
        screen = tmux.wait_text("the run completed · q quits", "| gate opened")
        assert "completed" in _row(screen, "waiter") and "RESULT" not in screen
        tmux.keys("q")  # the run is over: no question
        screen = tmux.wait_for(_restored, "the script ended")
        assert "RESULT completed" in screen and "EXIT=0" in screen
    finally:
        gate.touch()


@needs_tmux
@pytest.mark.timeout(120)
def test_run_view_ctrl_c_interrupts_the_run_and_puts_the_terminal_back(
    tmux: Tmux, tmp_path: Path,
) -> None:
    gate = _start_live(tmux, tmp_path)
    try:
        tmux.keys("C-c")
        screen = tmux.wait_for(_restored, "the script ended")
        assert "INTERRUPTED cancelled" in screen and "EXIT=0" in screen
    finally:
        gate.touch()


@needs_tmux
@pytest.mark.timeout(120)
def test_run_view_q_then_y_interrupts_the_run(tmux: Tmux, tmp_path: Path) -> None:
    gate = _start_live(tmux, tmp_path)
    try:
        tmux.keys("q")
        tmux.wait_text("stop the run? [y/N]")
        tmux.keys("y")
        screen = tmux.wait_for(_restored, "the script ended")
        assert "INTERRUPTED cancelled" in screen and "EXIT=0" in screen
        assert "RESULT" not in screen
    finally:
        gate.touch()


# ── phasewise run --tui ─────────────────────────────────────────────────────


@needs_tmux
@pytest.mark.timeout(120)
def test_phasewise_run_tui_shows_the_run_and_its_failures_after(
    tmux: Tmux, tmp_path: Path, phasewise_cmd: list[str],
) -> None:
    failing = textwrap.dedent(WATCHED).replace(
        'Phase("last", lambda: 3, depends_on=["waiter"])',
        'Phase("last", lambda: 1 / 0, depends_on=["waiter"])')
    (tmp_path / "pipe.py").write_text(failing, encoding="utf-8")
    tmux.start([*phasewise_cmd, "run", "pipe.py", "--tui", "--workdir", "wd"], tmp_path)
    try:
        tmux.wait_for(lambda s: "running" in _row(s, "waiter"), "waiter running")
        tmux.keys("Down", "Enter")  # output is captured: the view shows it
        tmux.wait_text("| waiting line 2")
        (tmp_path / "gate").touch()
        tmux.wait_for(lambda s: "failed" in _row(s, "last"), "last failed")
        tmux.keys("q")  # the run is over: no question
        screen = tmux.wait_for(_restored, "phasewise run ended")
        assert "EXIT=1" in screen
        assert "[FAIL] last" in screen  # the summary of what failed, once the view closed
        assert "ZeroDivisionError" in screen
    finally:
        (tmp_path / "gate").touch()


@pytest.mark.parametrize(("args", "says"), [
    (["--json"], "--tui draws on stdout, and --json would write there too"),
    (["--no-capture"], "--tui shows what phases print by capturing it"),
    (["--pause-after", "first"], "--tui cannot ask the questions of review points yet"),
])
def test_phasewise_run_tui_refuses_what_would_share_its_terminal(
    tmp_path: Path, phasewise_cmd: list[str], args: list[str], says: str,
) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(WATCHED), encoding="utf-8")
    ran = subprocess.run([*phasewise_cmd, "run", "pipe.py", "--tui", *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ran.returncode == 2, ran.stderr
    assert says in ran.stderr and "Traceback" not in ran.stderr


def test_phasewise_run_tui_without_a_terminal_exits_2(
    tmp_path: Path, phasewise_cmd: list[str],
) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(WATCHED), encoding="utf-8")
    ran = subprocess.run([*phasewise_cmd, "run", "pipe.py", "--tui"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode == 2, ran.stderr
    assert "--tui draws in a terminal" in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / ".phasewise").exists()  # refused before anything ran
