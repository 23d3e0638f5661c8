"""The live display: the region drawn from recorded actions (text at a fixed width), the
window of a run larger than the terminal, the echo of every line, frames bounded by
time and not by actions, and ``phasewise run`` choosing it on a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_distributions import phasewise_command

from phasewise import Action, Phase, Pipeline
from phasewise.cli.run import choose_display
from phasewise.core import actions as A
from phasewise.plugins.live import LiveDisplay, render_region
from phasewise.plugins.manager import plugin_manager

pytestmark = pytest.mark.timeout(120)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _noop() -> None:
    pass


def _state(pipeline: Pipeline, *actions: Action) -> Any:
    reducer = pipeline.build_reducer()
    state = reducer(None, Action(A.INIT))
    for action in actions:
        state = reducer(state, action)
    return state


FOUR = Pipeline("demo", Phase("fetch", _noop), Phase("resize", _noop, depends_on=("fetch",)),
                Phase("index", _noop, depends_on=("fetch",)),
                Phase("publish", _noop, depends_on=("resize", "index")))

MIDWAY = (
    Action(A.PIPELINE_START, 100.0),
    Action(A.PHASE_START, {"name": "fetch", "timestamp": 100.0, "executor": "thread"}),
    Action(A.PHASE_COMPLETE, {"name": "fetch", "timestamp": 100.4, "result": 1}),
    Action(A.PHASE_START, {"name": "resize", "timestamp": 100.5, "executor": "process",
                           "worker": "pid 812", "attempt": 2}),
    Action(A.PHASE_LOG, {"name": "resize", "line": "resizing 40/120", "stream": "stdout",
                         "timestamp": 101.0}),
    Action(A.PHASE_START, {"name": "index", "timestamp": 100.5, "executor": "process",
                           "worker": "pid 813"}),
    Action(A.PHASE_FAILED, {"name": "index", "timestamp": 100.8,
                            "error": "ValueError: no such key"}),
)


def test_the_region_at_a_fixed_width() -> None:
    state = _state(FOUR, *MIDWAY)
    text = render_region(state, width=90, height=20, now=102.6, frame=2, color=False,
                         order=FOUR.execution_order())
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[:4] == [
        "✓ fetch   thread            0.40s",
        "✗ index   process · pid 813 0.30s           ValueError: no such key",
        "⠹ resize  process · pid 812  2.1s attempt 2 resizing 40/120",
        "· publish",
    ]
    assert re.fullmatch(r"━+╸?─* +25%  1/4 phases · 2\.6s · ETA 7\.8s", lines[4])
    assert len(lines) == 5
    assert all(len(line) < 90 for line in text.splitlines())


def test_colors_and_ascii_symbols() -> None:
    state = _state(FOUR, *MIDWAY)
    colored = render_region(state, width=90, height=20, now=102.6)
    assert "\x1b[" in colored
    assert ANSI.sub("", colored).splitlines()[0].startswith("✓ fetch")
    plain = render_region(state, width=90, height=20, now=102.6, color=False, unicode=False)
    assert [line[0] for line in plain.splitlines()[:4]] == ["+", "*", "x", "."]


def test_a_run_larger_than_the_terminal_shows_what_matters_and_counts_the_rest() -> None:
    names = [f"p{i:04d}" for i in range(2000)]
    pipeline = Pipeline("big", *(Phase(n, _noop) for n in names))
    actions = [Action(A.PIPELINE_START, 0.0)]
    for n in names[:1500]:
        actions += [Action(A.PHASE_START, {"name": n, "timestamp": 1.0}),
                    Action(A.PHASE_COMPLETE, {"name": n, "timestamp": 2.0})]
    actions += [Action(A.PHASE_START, {"name": "p1500", "timestamp": 3.0}),
                Action(A.PHASE_START, {"name": "p0007", "timestamp": 3.0}),
                Action(A.PHASE_FAILED, {"name": "p0007", "error": "boom"})]
    state = _state(pipeline, *actions)
    text = render_region(state, width=80, height=12, now=4.0, color=False,
                         finished=names[1490:1500])
    lines = text.splitlines()
    assert len(lines) <= 12
    shown = [line.split()[1] for line in lines if line[:1] in "✓✗⠋·"]
    assert shown[:2] == ["p0007", "p1499"] or "p0007" in shown
    assert "p1500" in shown  # running
    assert "p1501" in shown  # the next to start
    assert any(re.search(r"… and 1,99\d more \(", line) for line in lines)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, to give the display a size."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


@pytest.fixture
def display() -> Iterator[Callable[..., tuple[LiveDisplay, _Terminal]]]:
    registered: list[LiveDisplay] = []

    def make(**options: Any) -> tuple[LiveDisplay, _Terminal]:
        stream = _Terminal()
        shown = LiveDisplay(stream, **options)
        plugin_manager().register(shown)
        registered.append(shown)
        return shown, stream

    yield make
    for shown in registered:
        if plugin_manager().is_registered(shown):
            plugin_manager().unregister(shown)


def _flood() -> int:
    for i in range(100_000):
        print(f"line {i}")
    return 1


def test_a_flood_of_output_is_echoed_whole_in_order_with_the_phase_name(
    display: Callable[..., tuple[LiveDisplay, _Terminal]],
) -> None:
    _, stream = display(show_output=True, color=False)
    result = Pipeline("flood", Phase("flood", _flood), capture_output=True).run(
        executor="thread")
    assert result.ok
    echoed = [line for line in ANSI.sub("", stream.getvalue()).splitlines()
              if line.startswith("flood | ")]
    assert echoed == [f"flood | line {i}" for i in range(100_000)]


def test_frames_follow_the_clock_not_the_actions(
    display: Callable[..., tuple[LiveDisplay, _Terminal]],
) -> None:
    _, stream = display()
    pipeline = Pipeline("many", *(Phase(f"p{i}", _noop) for i in range(2000)))
    result = pipeline.run(executor="thread")
    assert result.ok
    frames = stream.getvalue().count("\x1b[J")  # each frame clears the one before
    assert frames < 100  # 4,000 actions; ten frames a second at most
    summary = stream.getvalue().rsplit("\x1b[J", 1)[-1]
    assert "pipeline 'many' completed" in summary  # the region wiped, then the summary


def test_the_display_follows_only_the_run_it_was_made_for(
    display: Callable[..., tuple[LiveDisplay, _Terminal]],
) -> None:
    _, stream = display()
    Pipeline("first", Phase("a", _noop)).run(executor="inline")
    Pipeline("second", Phase("b", _noop)).run(executor="inline")
    assert "pipeline 'first' completed" in stream.getvalue()
    assert "second" not in stream.getvalue()


# ── which display `phasewise run` picks ─────────────────────────────────────


@pytest.mark.parametrize(("progress", "env", "captured", "expected"), [
    ("auto", {}, True, "rich"),
    ("auto", {}, False, "plain"),  # phases write to the terminal themselves
    ("auto", {"TERM": "dumb"}, True, "plain"),
    ("auto", {"NO_COLOR": "1"}, True, "plain"),
    ("rich", {"NO_COLOR": "1"}, False, "rich"),
    ("plain", {}, True, "plain"),
    ("none", {}, True, "none"),
])
def test_choose_display(progress: str, env: dict[str, str], captured: bool, expected: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert choose_display(progress, quiet=False, stream=_Terminal(),
                          capture_output=captured) == expected
    assert choose_display(progress, quiet=True, stream=_Terminal(),
                          capture_output=captured) == "none"
    if progress == "auto":
        assert choose_display(progress, quiet=False, stream=io.StringIO(),
                              capture_output=captured) == "plain"


PIPE = """
from phasewise import Phase, Pipeline

def first():
    print("hello from first")
    return 1

def second():
    import time

    print("hello from second")
    time.sleep(0.5)  # long enough for frames to be drawn
    return 2

pipeline = Pipeline("tty", Phase("first", first), Phase("second", second,
                    depends_on=("first",)), capture_output=True)
"""


def _in_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``phasewise ARGS`` with a pseudo-terminal as its stdin, stdout and stderr;
    its exit code and everything it wrote there."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PHASEWISE_EXECUTOR")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen([*phasewise_command(), *args], stdin=slave, stdout=slave,
                               stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                raise AssertionError("the run wrote nothing for 60 s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        return process.wait(30), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_phasewise_run_draws_the_live_display_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(PIPE), encoding="utf-8")
    code, screen = _in_a_terminal(["run", "pipe.py", "--show-output", "-e", "thread"],
                                  tmp_path)
    assert code == 0, screen
    assert "\x1b[J" in screen  # the region was drawn in place
    text = ANSI.sub("", screen)
    assert "first | hello from first" in text and "second | hello from second" in text
    assert "pipeline 'tty' completed" in text
    assert "[1/2]" not in text  # not the plain lines


def test_phasewise_run_writes_plain_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path,
) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(PIPE), encoding="utf-8")
    ran = subprocess.run([*phasewise_command(), "run", "pipe.py", "--show-output"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "[1/2] first..." in ran.stderr and "first | hello from first" in ran.stderr
    assert "\x1b[" not in ran.stderr


def test_show_output_with_no_capture_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "pipe.py").write_text(textwrap.dedent(PIPE), encoding="utf-8")
    ran = subprocess.run([*phasewise_command(), "run", "pipe.py", "--show-output",
                          "--no-capture"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert ran.returncode == 2
    assert "--show-output" in ran.stderr and "Traceback" not in ran.stderr


def test_help_explains_the_displays() -> None:
    ran = subprocess.run([sys.executable, "-m", "phasewise.cli.main", "run", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert "--show-output" in ran.stdout
    assert "rich" in ran.stdout and "plain" in ran.stdout


def _slow_printer() -> int:
    import time

    for i in range(5):
        print(f"slow {i}")
        time.sleep(0.1)
    return 1


def test_a_display_that_cannot_draw_says_so_and_writes_the_lines_as_they_come(
    display: Callable[..., tuple[LiveDisplay, _Terminal]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import phasewise.plugins.live as live

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("no room to draw")

    monkeypatch.setattr(live, "render_region", broken)
    _, stream = display(show_output=True, color=False)
    with pytest.warns(Warning, match="the live display stopped drawing: RuntimeError"):
        result = Pipeline("p", Phase("slow", _slow_printer), capture_output=True).run(
            executor="thread")
    assert result.ok
    echoed = [line for line in stream.getvalue().splitlines() if line.startswith("slow |")]
    assert echoed == [f"slow | slow {i}" for i in range(5)]
