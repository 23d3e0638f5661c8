"""What phases print is kept in the work directory's logs.jsonl as they print it, and each
phase's start in the journal names its executor and worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from phasewise import Phase, Pipeline
from phasewise.durable.logs import LogFile, read_logs, tail_logs
from phasewise.durable.workdir import Workdir
from phasewise.plugins.manager import executor_registry

pytestmark = pytest.mark.timeout(120)

EXECUTORS = [e for e in ("inline", "thread", "process", "subprocess")
             if e in executor_registry().names()]


def chatty() -> int:
    import sys

    for i in range(3):
        print(f"line {i}")
    print("trouble", file=sys.stderr)
    return 1


def sees_its_line_kept() -> bool:
    """Prints, then looks for that line in the work directory's log file."""
    import time

    print("while running")
    path = Path(os.environ["PHASEWISE_TEST_LOGS"])
    for _ in range(250):
        lines, _ = read_logs(path)
        if any(line.line == "while running" for line in lines):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("executor", EXECUTORS)
def test_captured_lines_are_kept_per_phase_in_order(executor: str, tmp_path: Path) -> None:
    workdir = Workdir(tmp_path / "wd")
    pipeline = Pipeline("logs", Phase("a", chatty), Phase("b", chatty, depends_on=("a",)),
                        capture_output=True)
    assert pipeline.run(executor=executor, workdir=workdir.path).ok
    tails = tail_logs(workdir.logs_file)
    for name in ("a", "b"):
        stdout = [line.line for line in tails[name] if line.stream == "stdout"]
        assert stdout == ["line 0", "line 1", "line 2"]
        assert [line.line for line in tails[name] if line.stream == "stderr"] == ["trouble"]
    journal = [json.loads(line) for line in workdir.journal_file.read_text().splitlines()]
    starts = [r for r in journal if r.get("status") == "running"]
    assert {r["executor"] for r in starts} == {executor}
    if executor == "process":  # a pool worker says which process ran the phase
        assert all(r["worker"].startswith("pid ") for r in starts)
        assert all(int(r["worker"][4:]) != os.getpid() for r in starts)


def test_a_line_is_in_the_file_while_its_phase_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = Workdir(tmp_path / "wd")
    monkeypatch.setenv("PHASEWISE_TEST_LOGS", str(workdir.logs_file))
    result = Pipeline("live", Phase("a", sees_its_line_kept), capture_output=True).run(
        executor="thread", workdir=workdir.path)
    assert result.results == {"a": True}


def test_a_resumed_run_appends_a_fresh_run_starts_afresh(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    pipeline = Pipeline("again", Phase("a", chatty), capture_output=True)
    pipeline.run(executor="inline", workdir=wd)
    pipeline.run(executor="inline", workdir=wd, resume=True, cache=False)
    assert len(tail_logs(Workdir(wd).logs_file)["a"]) == 4  # kept, not run again
    pipeline.run(executor="inline", workdir=wd)
    assert len(tail_logs(Workdir(wd).logs_file)["a"]) == 4


def test_reading_from_an_offset_waits_for_a_line_to_be_complete(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    logs = LogFile(path, fresh=True)
    logs.write("a", "stdout", "one line, longer than the next run's", 1.0)
    first, offset = read_logs(path)
    assert [line.line for line in first] == ["one line, longer than the next run's"]
    with open(path, "ab") as f:
        f.write(b'{"phase":"a","stream":"stdout","li')  # a writer half-way through a line
    nothing, same = read_logs(path, offset)
    assert (nothing, same) == ([], offset)
    assert read_logs(tmp_path / "missing.jsonl") == ([], 0)
    path.write_bytes(b"")  # a new run started the file afresh
    logs.close()
    logs = LogFile(path, fresh=False)
    logs.write("b", "stderr", "two", 2.0)
    logs.close()
    again, _ = read_logs(path, offset)  # past the end of a file that shrank: from its start
    assert [(line.phase, line.stream, line.line) for line in again] == [("b", "stderr", "two")]
