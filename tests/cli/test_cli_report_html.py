"""``phasewise report``: real runs kept in a work directory (inline, thread, process; a
retried phase, a cache hit on the second run, a failed phase and the one it stops), then
the report through the CLI, read back with html.parser — and opened in headless
Chromium, when Debian's ``chromium`` is installed, to check what it draws."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from phasewise.cli.palette import STATUS_FILL
from phasewise.cli.run_history import collect_attempts, critical_path
from phasewise.plugins.manager import executor_registry

pytestmark = pytest.mark.timeout(300)

EXECUTORS = [e for e in ("inline", "thread", "process") if e in executor_registry().names()]

PIPELINE = '''
import os

COUNTER = {counter!r}


def talk():
    print("<script>alert('a')</script> & \\"quoted\\"")
    print("second line of a")
    return 1


def flaky():
    # every odd call fails: in each run, attempt 1 fails and attempt 2 completes
    fd = os.open(COUNTER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"x")
    os.close(fd)
    if os.path.getsize(COUNTER) % 2:
        raise RuntimeError("the first attempt fails")
    print("flaky made it")
    return 2


def kept():
    return 3


def boom():
    raise ValueError("boom <b>")


pipeline = Pipeline(
    "report-demo",
    Phase("a", talk),
    Phase("flaky", flaky, depends_on="a",
          policy=PhasePolicy(on_fail="retry", max_retries=2, retry_delay=0)),
    Phase("kept", kept, cache=True),
    Phase("never", kept, when=lambda: False),
    Phase("boom", boom, depends_on=("flaky", "kept")),
    Phase("after", kept, depends_on="boom"),
    capture_output=True,
)
'''

# (phase, status, attempt) of every bar, in execution order (a and kept are one level)
EXPECTED = [("a", "completed", "1"), ("kept", "completed", "1"), ("never", "skipped", "1"),
            ("flaky", "retrying", "1"), ("flaky", "completed", "2"),
            ("boom", "failed", "1"), ("after", "cancelled", "1")]


class Page(HTMLParser):
    """The bars (their attributes, in order), their hover texts, the phase table's rows
    and every lane's label."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bars: list[dict[str, str]] = []
        self.rows: list[dict[str, str]] = []
        self.lanes: list[str] = []
        self.panel: dict[str, str] = {}
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        classes = found.get("class", "").split()
        if tag == "rect" and "bar" in classes:
            self.bars.append({**found, "title": ""})
        elif tag == "title" and self._in == "lane":  # a long label's full text follows
            self.lanes.append("".join(self._text))
            self._in = None
        elif tag == "title" and self.bars and not self.bars[-1]["title"]:
            self._start("title")
        elif tag == "text" and "lane-label" in classes:
            self._start("lane")
        elif tag == "tr" and "data-phase" in found:
            self.rows.append(found)
        elif tag == "aside":
            self.panel = found
        elif tag == "div" and found.get("id") == "panel-body":
            self._start("panel")

    def _start(self, what: str) -> None:
        self._in, self._text = what, []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text)
        if self._in == "title" and tag == "title":
            self.bars[-1]["title"] = text
        elif self._in == "lane" and tag == "text":
            self.lanes.append(text)
        elif self._in == "panel" and tag == "aside":
            self.panel["text"] = text
        else:
            return
        self._in = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def _run_twice(invoke: Callable[..., Result], write_target: Callable[..., Path],
               tmp_path: Path, executor: str) -> Path:
    """Two runs in one work directory: the second has a cache hit for ``kept``."""
    target = write_target(PIPELINE.format(counter=str(tmp_path / "calls")))
    workdir = tmp_path / "wd"
    for _ in range(2):
        result = invoke("run", target, "-e", executor, "--workdir", workdir, "-q")
        assert result.exit_code == 1, result.output  # boom fails
    return workdir


def _report(invoke: Callable[..., Result], workdir: Path, out: Path) -> str:
    result = invoke("report", "--workdir", workdir, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"report written to {out}" in result.stderr
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_attempt_is_a_bar_in_order_with_its_status_color(
        executor: str, invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    workdir = _run_twice(invoke, write_target, tmp_path, executor)
    run_record = json.loads((workdir / "journal.jsonl").read_text().splitlines()[1])
    assert run_record["depends_on"] == {"a": [], "kept": [], "never": [], "flaky": ["a"],
                                        "boom": ["flaky", "kept"], "after": ["boom"]}
    html = _report(invoke, workdir, tmp_path / "report.html")
    page = parse(html)
    assert [(b["data-phase"], b["data-status"], b["data-attempt"]) for b in page.bars] \
        == EXPECTED
    assert all(b["fill"] == STATUS_FILL[b["data-status"]] for b in page.bars)
    assert [b["data-phase"] for b in page.bars if b.get("data-cached")] == ["kept"]
    # the critical path ends at the last phase to run (boom), through the longer branch
    assert [b["data-phase"] for b in page.bars if b.get("data-critical")] \
        == ["a", "flaky", "flaky", "boom"]
    assert "a → flaky → boom" in html
    # one row per phase, in execution order, with the run's statuses
    assert [(r["data-phase"], r["data-status"]) for r in page.rows] == [
        ("a", "completed"), ("kept", "completed"), ("never", "skipped"), ("flaky", "completed"),
        ("boom", "failed"), ("after", "cancelled")]
    # each worker its lane: the pool's by pid, in-process executors by name
    ran = [b for b in page.bars if b["data-phase"] in ("a", "flaky", "boom")]
    if executor == "process":
        assert all(lane.startswith("process · pid ") for lane in page.lanes[:-2])
        assert all(" · process · pid " in b["title"] for b in ran)
    else:
        assert page.lanes[0] == executor
        assert all(b["title"].endswith(f" · {executor}") or f" · {executor}\n" in b["title"]
                   for b in ran)
    assert page.lanes[-2:] == ["cache", "not started"]


def test_hover_texts_hold_errors_and_last_lines_escaped(
        invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    workdir = _run_twice(invoke, write_target, tmp_path, "inline")
    html = _report(invoke, workdir, tmp_path / "report.html")
    page = parse(html)
    bar = {(b["data-phase"], b["data-attempt"]): b["title"] for b in page.bars}
    assert bar[("a", "1")].endswith(
        "── last lines ──\n<script>alert('a')</script> & \"quoted\"\nsecond line of a")
    assert "RuntimeError: the first attempt fails" in bar[("flaky", "1")]
    assert bar[("flaky", "2")].endswith("flaky made it")  # the last attempt's bar
    assert "ValueError: boom <b>" in bar[("boom", "1")]
    assert "not started: phase 'boom' failed" in bar[("after", "1")]
    assert "skipped" in bar[("never", "1")]
    assert "<script>alert" not in html and "boom <b>" not in html  # escaped everywhere
    assert "&lt;script&gt;alert" in html
    assert "http://" not in html and "https://" not in html  # nothing from the network
    assert "<link" not in html and " src=" not in html


def test_names_that_look_like_markup_are_escaped(
        invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    odd = "<img onerror=x>&\"'"
    target = write_target(f"pipeline = Pipeline('p<&>', Phase({odd!r}, int), "
                          f"Phase('b', int, depends_on={odd!r}))\n")
    workdir = tmp_path / "wd"
    assert invoke("run", target, "-e", "inline", "--workdir", workdir, "-q").exit_code == 0
    html = _report(invoke, workdir, tmp_path / "r.html")
    page = parse(html)
    assert [b["data-phase"] for b in page.bars] == [odd, "b"]
    assert [r["data-phase"] for r in page.rows] == [odd, "b"]
    assert "<img" not in html and "p<&>" not in html


def test_a_journal_without_dependencies_reports_without_a_critical_path(
        invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    workdir = _run_twice(invoke, write_target, tmp_path, "inline")
    journal = workdir / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    for record in records:  # as phasewise wrote it before the run record named them
        record.pop("depends_on", None)
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    state = workdir / "pipeline-state.json"  # the snapshot read the journal to its end
    snapshot = json.loads(state.read_text())
    state.write_text(json.dumps({**snapshot, "offset": journal.stat().st_size}))
    html = _report(invoke, workdir, tmp_path / "report.html")
    page = parse(html)
    assert [(b["data-phase"], b["data-status"], b["data-attempt"]) for b in page.bars] \
        == EXPECTED
    assert not [b for b in page.bars if b.get("data-critical")]
    assert "not recorded" in html


def test_open_and_interrupted_attempts() -> None:
    records: list[dict[str, Any]] = [
        {"k": "run", "time": 10.0, "depends_on": {"a": [], "b": ["a"]}},
        {"k": "phase", "phase": "a", "status": "running", "time": 11.0, "started": 11.0,
         "attempt": 1, "executor": "thread", "worker": ""},
        {"k": "run", "time": 20.0, "pid": 2, "depends_on": {"a": [], "b": ["a"]}},  # resumed
        {"k": "phase", "phase": "a", "status": "running", "time": 21.0, "started": 21.0,
         "attempt": 1, "executor": "process", "worker": "pid 7"},
        {"k": "phase", "phase": "a", "status": "completed", "time": 23.0, "finished": 23.0},
        {"k": "phase", "phase": "b", "status": "running", "time": 23.5, "started": 23.5,
         "attempt": 1, "executor": "process", "worker": "pid 7"},
    ]
    attempts, depends_on = collect_attempts(records, now=30.0)
    a, b = attempts["a"], attempts["b"]
    assert [(x.status, x.start, x.end, x.lane) for x in a] == [
        ("cancelled", 11.0, 20.0, "thread"), ("completed", 21.0, 23.0, "process · pid 7")]
    assert [(x.status, x.end) for x in b] == [("running", 30.0)]  # still going
    assert depends_on == {"a": [], "b": ["a"]}
    assert critical_path(attempts, depends_on) == ["a", "b"]
    assert critical_path({}, depends_on) == []


def test_a_resumed_run_keeps_the_earlier_bars_of_what_it_carried_over(
        invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    workdir = _run_twice(invoke, write_target, tmp_path, "inline")
    target = tmp_path / "pipe.py"
    assert invoke("run", target, "-e", "inline", "--workdir", workdir, "--resume",
                  "-q").exit_code == 1
    page = parse(_report(invoke, workdir, tmp_path / "report.html"))
    bars = [(b["data-phase"], b["data-status"]) for b in page.bars]
    assert bars[:3] == [("a", "completed"), ("kept", "completed"),  # not run again
                        ("never", "skipped")]
    assert bars.count(("boom", "failed")) == 2  # once per run
    assert bars[-1] == ("after", "cancelled")


@pytest.mark.parametrize("problem", ["missing", "empty", "file", "out-dir", "out-parent"])
def test_bad_input_is_one_line_and_exit_2(problem: str, invoke: Callable[..., Result],
                                          write_target: Callable[..., Path],
                                          tmp_path: Path) -> None:
    workdir, out = tmp_path / "wd", tmp_path / "report.html"
    if problem == "empty":
        workdir.mkdir()
    elif problem == "file":
        workdir.write_text("not a work directory")
    elif problem in ("out-dir", "out-parent"):
        target = write_target("pipeline = Pipeline('p', Phase('a', int))\n")
        assert invoke("run", target, "-e", "inline", "--workdir", workdir, "-q").exit_code == 0
        out = tmp_path if problem == "out-dir" else tmp_path / "nowhere" / "report.html"
    result = invoke("report", "--workdir", workdir, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "nowhere").exists()


def test_no_run_under_the_current_directory_is_exit_2(invoke: Callable[..., Result]) -> None:
    result = invoke("report", "-o", "r.html")
    assert result.exit_code == 2
    assert "no run is recorded" in result.stderr and "--workdir" in result.stderr


# ── in a browser ────────────────────────────────────────────────────────────

CHROMIUM = shutil.which("chromium")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--window-size=1300,1000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium); the report is not opened in a browser")
def test_headless_chromium_draws_every_bar_in_order_with_its_color(
        invoke: Callable[..., Result], write_target: Callable[..., Path],
        tmp_path: Path) -> None:
    workdir = _run_twice(invoke, write_target, tmp_path, "thread")
    out = tmp_path / "report.html"
    _report(invoke, workdir, out)
    shot = tmp_path / "shot.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", out.as_uri())
    assert shot.exists(), taken.stderr[-2000:]
    assert _png_size(shot) == (1300, 1000)
    assert shot.stat().st_size > 10_000  # tables, lanes and bars, not a blank page

    dumped = _chromium(tmp_path, "--dump-dom", out.as_uri() + "#phase=a")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    page = parse(dumped.stdout)
    assert 'data-ready="1"' in dumped.stdout  # the script ran to its end
    assert [(b["data-phase"], b["data-status"], b["data-attempt"]) for b in page.bars] \
        == EXPECTED
    assert all(b["fill"] == STATUS_FILL[b["data-status"]] for b in page.bars)
    assert all(float(b["width"]) > 0 for b in page.bars)
    # #phase=a opened a's panel, with its last lines (text, not markup)
    assert "hidden" not in page.panel
    assert "<script>alert('a')</script> & \"quoted\"" in page.panel["text"]
    assert "second line of a" in page.panel["text"]
    assert "on the critical path" in page.panel["text"]
    assert 'class="bar sel' in dumped.stdout or 'class="bar crit sel' in dumped.stdout


@pytest.mark.parametrize("killed", [False, True], ids=["running", "killed"])
def test_a_run_in_progress_or_killed_is_reported(
        killed: bool, write_target: Callable[..., Path], phasewise_cmd: list[str],
        tmp_path: Path) -> None:
    """Read while the run goes (no lock taken); a run killed mid-phase shows that phase
    cut off where its record ends, not running on."""
    go = tmp_path / "go"
    target = write_target(f'''
import os, time

def wait():
    for _ in range(3000):  # at most a minute
        if os.path.exists({str(go)!r}):
            return 1
        time.sleep(0.02)
    return 0

pipeline = Pipeline("live", Phase("first", int), Phase("waits", wait, depends_on="first"),
                    Phase("then", int, depends_on="waits"))
''')
    workdir = tmp_path / "wd"
    run = subprocess.Popen([*phasewise_cmd, "run", str(target), "-e", "thread", "--workdir",
                            str(workdir), "-q"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        journal = workdir / "journal.jsonl"
        for _ in range(1500):  # until "waits" has started (at most 30 s)
            if journal.exists() and '"phase":"waits","status":"running"' in journal.read_text():
                break
            run.poll()
            assert run.returncode is None, run.stderr.read() if run.stderr else ""
            time.sleep(0.02)
        if killed:
            run.kill()  # SIGKILL: the journal ends with "waits" running
            run.wait(timeout=60)
        out = tmp_path / "live.html"
        report = subprocess.run([*phasewise_cmd, "report", "--workdir", str(workdir), "-o",
                                 str(out)], capture_output=True, text=True, timeout=60,
                                check=False)
        assert report.returncode == 0, report.stderr
    finally:
        go.touch()
        assert run.wait(timeout=60) == (-9 if killed else 0)
    html = out.read_text(encoding="utf-8")
    page = parse(html)
    assert [(b["data-phase"], b["data-status"]) for b in page.bars] == [
        ("first", "completed"), ("waits", "cancelled" if killed else "running")]
    if killed:
        assert "process is gone" in page.bars[1]["title"]
        assert f"interrupted (its process {run.pid} is gone)" in html
    assert [(r["data-phase"], r["data-status"]) for r in page.rows] == [
        ("first", "completed"), ("waits", "running"), ("then", "pending")]
