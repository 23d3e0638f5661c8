"""Review points: ``Phase(review=...)`` and ``--pause-after`` wait on a real terminal (a
pseudo-terminal here) for Enter or ``q``, and never without one or with ``--no-pause``."""

from __future__ import annotations

import io
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from phasewise.cli.review import is_interactive, terminal_review

PROMPT = b"q and Enter to stop"

REVIEWED = """\
from phasewise import Phase, Pipeline

def draft(workdir):
    (workdir / "out.txt").write_text("draft", encoding="utf-8")
    return 1

def publish(context):
    return context["draft"] + 1

def extra(context):
    return 0

pipeline = Pipeline(
    "reviewed",
    Phase("draft", draft, review="Check the files in {workdir}"),
    Phase("publish", publish, depends_on="draft"),
    Phase("extra", extra, depends_on="publish"),
)
"""


class Terminal:
    """``phasewise`` run with stdin, stdout and stderr on a pseudo-terminal; every read
    is bounded by a deadline."""

    def __init__(self, cmd: list[str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                         cwd=cwd, close_fds=True)
        finally:
            os.close(slave)
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if not self._read(deadline):
                raise AssertionError(f"{marker!r} never came; saw {self.text()!r}")
        return self.output

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 30) -> int:
        """Read everything until the process has ended; its exit code."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        return self.proc.wait(max(deadline - time.monotonic(), 1))

    def text(self) -> str:
        return self.output.decode("utf-8", "replace").replace("\r\n", "\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)

    def _read(self, deadline: float) -> bool:
        """One chunk; False at the end of output (or past the deadline)."""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the other side is closed
                return False
            if not chunk:
                return False
            self.output += chunk
            return True
        return False


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "reviewed.py"
    path.write_text(REVIEWED, encoding="utf-8")
    return path


def _terminal(phasewise_cmd: list[str], tmp_path: Path, *args: object) -> Terminal:
    return Terminal([*phasewise_cmd, "run", *map(str, args)], tmp_path)


@pytest.mark.timeout(90)
def test_enter_goes_on(phasewise_cmd: list[str], target: Path, tmp_path: Path) -> None:
    term = _terminal(phasewise_cmd, tmp_path, target, "--workdir", "w")
    try:
        term.read_until(PROMPT)
        shown = term.text()
        folder = tmp_path / "w" / "draft"
        assert f"[REVIEW] draft: Check the files in {folder}" in shown
        assert f"phasewise run {target} --workdir w --resume" in shown
        assert (folder / "out.txt").exists()  # the phase is done when the review comes
        assert "publish..." not in shown  # nothing after it has started
        term.send(b"\n")
        assert term.finish() == 0, term.text()
    finally:
        term.close()
    text = term.text()
    assert "pipeline 'reviewed' completed" in text
    assert "  [OK] publish" in text and "  [OK] extra" in text


@pytest.mark.timeout(90)
def test_q_stops_the_run_and_says_how_to_carry_it_on(
    phasewise_cmd: list[str], target: Path, tmp_path: Path
) -> None:
    term = _terminal(phasewise_cmd, tmp_path, target, "--workdir", "w", "-e", "inline")
    try:
        term.read_until(PROMPT)
        term.send(b"q\n")
        assert term.finish() == 1, term.text()
    finally:
        term.close()
    text = term.text()
    assert "pipeline 'reviewed' cancelled" in text
    lines = text.splitlines()
    assert any(line.startswith("  [OK]") and "draft" in line for line in lines)
    publish = next(line for line in lines if " publish " in line and line.startswith("  ["))
    assert publish.startswith("  [CANCELLED]")
    assert "stopped at the review after phase 'draft'" in publish
    command = f"phasewise run {target} -e inline --workdir w --resume"
    assert f"to carry this run on: {command}" in lines
    resumed = subprocess.run([*phasewise_cmd, "run", str(target), "-e", "inline",
                              "--workdir", "w", "--resume"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    assert "[1/3] draft... kept from the last run" in resumed.stderr
    assert "(kept from the last run)" in resumed.stderr


@pytest.mark.timeout(90)
def test_pause_after_names_a_review_point(
    phasewise_cmd: list[str], target: Path, tmp_path: Path
) -> None:
    term = _terminal(phasewise_cmd, tmp_path, target, "--workdir", "w", "--pause-after",
                     "publish")
    try:
        term.read_until(PROMPT)
        term.send(b"\n")  # after draft
        term.output = b""
        term.read_until(PROMPT)
        assert "[REVIEW] publish: phase 'publish' is done" in term.text()
        term.send(b"\n")
        assert term.finish() == 0, term.text()
    finally:
        term.close()


@pytest.mark.timeout(90)
def test_no_pause_on_a_terminal_never_waits(
    phasewise_cmd: list[str], target: Path, tmp_path: Path
) -> None:
    term = _terminal(phasewise_cmd, tmp_path, target, "--workdir", "w", "--no-pause",
                     "--pause-after", "publish")
    try:
        assert term.finish() == 0, term.text()
    finally:
        term.close()
    assert "[REVIEW]" not in term.text()
    assert "pipeline 'reviewed' completed" in term.text()


@pytest.mark.timeout(90)
def test_without_a_terminal_nothing_waits(
    phasewise_cmd: list[str], target: Path, tmp_path: Path
) -> None:
    # stdin is a pipe we keep open and never write: a run that waited would hang
    proc = subprocess.Popen([*phasewise_cmd, "run", str(target), "--workdir", "w",
                             "--pause-after", "publish"], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "[REVIEW]" not in err
    assert "  [OK] extra" in err


def test_terminal_review_answers() -> None:
    def ask(answer: str) -> tuple[bool, str]:
        out = io.StringIO()
        review = terminal_review(io.StringIO(answer), out, "phasewise run x.py --resume")
        return review("draft", "Look at /w/draft", Path("/w/draft")), out.getvalue()

    go_on, shown = ask("\n")
    assert go_on is True
    assert "[REVIEW] draft: Look at /w/draft" in shown
    assert "its folder" not in shown  # the message names it already
    assert "phasewise run x.py --resume" in shown
    assert ask("q\n")[0] is False
    assert ask("  Q \n")[0] is False
    assert ask("")[0] is False  # end of input: nobody can say go on
    assert ask("anything else\n")[0] is True


def test_is_interactive_needs_both_terminals() -> None:
    assert is_interactive(None, io.StringIO()) is False
    assert is_interactive(io.StringIO(), io.StringIO()) is False


@pytest.mark.timeout(90)
def test_the_live_display_steps_aside_for_the_question(
    phasewise_cmd: list[str], target: Path, tmp_path: Path
) -> None:
    term = _terminal(phasewise_cmd, tmp_path, target, "--workdir", "w", "--progress", "rich")
    try:
        term.read_until(PROMPT)
        asked_at = len(term.output)
        deadline = time.monotonic() + 0.5  # a frame drawn now would write over the question
        while term._read(deadline):
            pass
        assert b"phases \xc2\xb7" not in term.output[asked_at:]  # the bar's "1/3 phases ·"
        term.send(b"\n")
        assert term.finish() == 0, term.text()
    finally:
        term.close()
    assert "pipeline 'reviewed' completed" in term.text()
