"""Runs kept in a work directory: the journal and state file as a run goes, resume after
a kill, the lock, and every way a work directory can be wrong.

Phases count their executions by appending to a file (O_APPEND, from any process).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from phasewise import Phase, Pipeline
from phasewise.core.errors import PhasewiseWarning
from phasewise.durable.resume import load_ledger
from phasewise.durable.workdir import Workdir, WorkdirError, WorkdirLocked
from phasewise.plugins.manager import executor_registry
from phasewise.testing.handlers import record

pytestmark = pytest.mark.timeout(120)

EXECUTORS = [e for e in ("inline", "thread", "process", "subprocess")
             if e in executor_registry().names()]


def _phasewise() -> list[str]:
    script = shutil.which("phasewise")
    return [script] if script else [sys.executable, "-m", "phasewise.cli.main"]


def _count(log: Path) -> dict[str, int]:
    seen: dict[str, int] = {}
    if log.exists():
        for line in log.read_text().split():
            seen[line] = seen.get(line, 0) + 1
    return seen


append = record  # one line per call, atomically, from any process


# ── a run in a work directory, from Python ──────────────────────────────────


def counted(log: str, name: str, value: int, context=None) -> int:
    append(log, name)
    return value + sum(context.values()) if context else value


def _chain(log: Path) -> Pipeline:
    from functools import partial

    return Pipeline(
        "chain",
        Phase("a", partial(counted, str(log), "a", 1)),
        Phase("b", partial(counted, str(log), "b", 10), depends_on="a"),
        Phase("c", partial(counted, str(log), "c", 100), depends_on="b"),
    )


def test_a_run_is_kept_and_a_resumed_run_runs_nothing_again(tmp_path: Path) -> None:
    log, workdir = tmp_path / "log", tmp_path / "work"
    first = _chain(log).run(executor="inline", workdir=workdir)
    assert first.ok and first.results["c"] == 111
    assert (workdir / "pipeline-state.json").exists()
    assert (workdir / "journal.jsonl").exists()
    assert oct(workdir.stat().st_mode & 0o777) == "0o700"
    ledger = load_ledger(Workdir(workdir))
    assert ledger.status == "completed"
    assert [p["status"] for p in ledger.phases.values()] == ["completed"] * 3
    again = _chain(log).run(executor="inline", workdir=workdir, resume=True)
    assert again.ok
    assert again.results == first.results
    assert _count(log) == {"a": 1, "b": 1, "c": 1}


def broken_once(log: str, flag: str, context) -> int:
    append(log, "b")
    if not os.path.exists(flag):
        raise RuntimeError("b breaks the first time")
    return context["a"] + 1


def test_resume_runs_the_failed_phase_and_what_follows_it_only(tmp_path: Path) -> None:
    from functools import partial

    log, workdir, flag = tmp_path / "log", tmp_path / "work", tmp_path / "fixed"

    def pipeline() -> Pipeline:
        return Pipeline(
            "mend",
            Phase("a", partial(counted, str(log), "a", 1)),
            Phase("b", partial(broken_once, str(log), str(flag)), depends_on="a"),
            Phase("c", partial(counted, str(log), "c", 5), depends_on="b"),
            Phase("side", partial(counted, str(log), "side", 7)),
        )

    first = pipeline().run(executor="thread", workdir=workdir)
    assert first.status == "failed"
    flag.touch()
    again = pipeline().run(executor="thread", workdir=workdir, resume=True)
    assert again.ok, again.state
    assert again.results["c"] == 7 and again.results["a"] == 1
    assert _count(log) == {"a": 1, "b": 2, "c": 1, "side": 1}


def test_a_changed_phase_runs_again_with_everything_downstream(tmp_path: Path) -> None:
    from functools import partial

    log, workdir = tmp_path / "log", tmp_path / "work"
    _chain(log).run(executor="inline", workdir=workdir)
    changed = Pipeline(
        "chain",
        Phase("a", partial(counted, str(log), "a", 1)),
        Phase("b", partial(counted, str(log), "b", 20), depends_on="a"),  # new argument
        Phase("c", partial(counted, str(log), "c", 100), depends_on="b"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = changed.run(executor="inline", workdir=workdir, resume=True)
    assert result.results["c"] == 121
    assert _count(log) == {"a": 1, "b": 2, "c": 2}
    notes = [str(w.message) for w in caught if issubclass(w.category, PhasewiseWarning)]
    assert any("'b' runs again" in n and "definition changed" in n for n in notes), notes
    assert any("'c' runs again" in n and "dependency 'b'" in n for n in notes), notes


def unpicklable(log: str):
    append(log, "u")
    return lambda: "a lambda's closure over a generator cannot be pickled", (x for x in ())


def test_a_result_that_cannot_be_kept_warns_and_runs_again_on_resume(tmp_path: Path) -> None:
    from functools import partial

    log, workdir = tmp_path / "log", tmp_path / "work"
    pipeline = Pipeline("keep", Phase("u", partial(unpicklable, str(log))),
                        Phase("after", partial(counted, str(log), "after", 1)))
    with pytest.warns(PhasewiseWarning, match="result of phase 'u' cannot be kept"):
        first = pipeline.run(executor="inline", workdir=workdir)
    assert first.ok
    pipeline.run(executor="inline", workdir=workdir, resume=True)
    assert _count(log) == {"u": 2, "after": 1}


def test_resume_with_nothing_recorded_says_so_and_runs_everything(tmp_path: Path) -> None:
    with pytest.warns(PhasewiseWarning, match="nothing to resume"):
        result = _chain(tmp_path / "log").run(workdir=tmp_path / "empty", resume=True)
    assert result.ok
    assert _count(tmp_path / "log") == {"a": 1, "b": 1, "c": 1}
    with pytest.raises(ValueError, match="needs the workdir"):
        _chain(tmp_path / "log").run(resume=True)


@pytest.mark.parametrize("name", ["_results", "logs.jsonl"])
def test_a_phase_may_not_take_a_name_phasewise_keeps(name: str, tmp_path: Path) -> None:
    pipeline = Pipeline("reserved", Phase(name, lambda: 1))
    with pytest.raises(WorkdirError, match="keeps for its own files"):
        pipeline.run(workdir=tmp_path / "w")


# ── bad work directories and state files (CLI, exit 2) ──────────────────────

PIPE = """
import os
from phasewise import Phase, Pipeline

LOG = os.environ["COUNT_LOG"]

def step(name, pause):
    def run(context=None):
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"start-{name}\\n".encode())
        os.close(fd)
        import time
        time.sleep(pause)
        return (sum(context.values()) if context else 0) + len(name)
    run.__name__ = run.__qualname__ = f"step_{name}"
    return run

pipeline = Pipeline(
    "killme",
    Phase("p0", step("p0", 0.15)),
    Phase("p1", step("p1", 0.15), depends_on="p0"),
    Phase("p2", step("p2", 0.15), depends_on="p0", parallel=True),
    Phase("p3", step("p3", 0.15), depends_on="p0", parallel=True),
    Phase("p4", step("p4", 0.15), depends_on=("p1", "p2", "p3")),
    Phase("p5", step("p5", 0.15), depends_on="p4"),
)
"""
P5 = 16  # p0..p3 return 2, 4, 4, 4; p4 = 4 + 4 + 4 + 2; p5 = p4 + 2


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_phasewise(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _pipe(tmp_path: Path) -> Path:
    target = tmp_path / "pipe.py"
    target.write_text(textwrap.dedent(PIPE))
    return target


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("delay", [0.1, 0.35, 0.6, 0.9])
def test_a_killed_run_resumes_without_running_a_completed_phase_again(
    executor: str, delay: float, tmp_path: Path
) -> None:
    target, workdir, log = _pipe(tmp_path), tmp_path / "work", tmp_path / "count"
    env = {**os.environ, "COUNT_LOG": str(log)}
    proc = subprocess.Popen([*_phasewise(), "run", str(target), "-e", executor,
                             "--workdir", str(workdir), "-j", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = _count(log)
    try:
        completed = {n for n, p in load_ledger(Workdir(workdir)).phases.items()
                     if p["status"] == "completed"}
    except WorkdirError:
        completed = set()  # killed before the first snapshot
    resumed = _run(["run", str(target), "-e", executor, "--workdir", str(workdir),
                    "--resume", "--json", "-j", "2"], tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    after = _count(log)
    again = {name[len("start-"):] for name in after
             if after[name] > before.get(name, 0)}
    assert not again & completed, (
        f"ran again after completing: {again & completed}; before {before}, after {after}; "
        f"resume said: {resumed.stderr}; journal: {(workdir / 'journal.jsonl').read_text()}")
    assert {f"start-p{i}" for i in range(6)} <= set(after)
    assert doc["results"]["p5"] == P5, doc["results"]


def test_a_second_run_on_the_same_workdir_is_refused_naming_the_first(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    env = {"COUNT_LOG": str(tmp_path / "count")}
    first = subprocess.Popen([*_phasewise(), "run", str(target), "--workdir", str(workdir)],
                             cwd=tmp_path, env={**os.environ, **env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (workdir / "journal.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        second = _run(["run", str(target), "--workdir", str(workdir)], tmp_path, env)
    finally:
        first.wait(30)
    assert second.returncode == 2, second.stderr
    assert f"in use by process {first.pid}" in second.stderr
    assert first.returncode == 0


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    env = {"COUNT_LOG": str(tmp_path / "count")}
    first = subprocess.Popen([*_phasewise(), "run", str(target), "--workdir", str(workdir)],
                             cwd=tmp_path, env={**os.environ, **env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    first.kill()
    first.wait(10)
    again = _run(["run", str(target), "--workdir", str(workdir), "--resume"], tmp_path, env)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is empty"),
    (b'{"schema": 1, "pipeline": "killme", "phas', "is corrupted"),
    (b"[1, 2, 3]", "not a phasewise state file"),
    (b'{"schema": 99, "pipeline": "killme"}', "schema version 99"),
    (b'{"schema": 1, "pipeline": "other", "phases": [], "journal": "x", "offset": 0, '
     b'"status": "completed"}', "belongs to pipeline 'other'"),
])
def test_a_bad_state_file_is_named_with_what_is_wrong(
    tmp_path: Path, content: bytes, says: str
) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    env = {"COUNT_LOG": str(tmp_path / "count")}
    assert _run(["run", str(target), "--workdir", str(workdir)], tmp_path, env).returncode == 0
    (workdir / "pipeline-state.json").write_bytes(content)
    resumed = _run(["run", str(target), "--workdir", str(workdir), "--resume"], tmp_path, env)
    assert resumed.returncode == 2, resumed.stderr
    assert str(workdir / "pipeline-state.json") in resumed.stderr
    assert says in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_a_torn_last_journal_record_is_ignored(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    env = {"COUNT_LOG": str(tmp_path / "count")}
    assert _run(["run", str(target), "--workdir", str(workdir)], tmp_path, env).returncode == 0
    with open(workdir / "journal.jsonl", "ab") as f:
        f.write(b'{"k": "phase", "phase": "p5", "sta')
    status = _run(["status", "--workdir", str(workdir), "--json"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "completed"


def test_a_workdir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    workdir.write_text("not a directory")
    result = _run(["run", str(target), "--workdir", str(workdir)], tmp_path,
                  {"COUNT_LOG": str(tmp_path / "count")})
    assert result.returncode == 2
    assert "is a file" in result.stderr


def test_a_workdir_others_can_write_is_refused(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    workdir.mkdir()
    workdir.chmod(0o777)
    result = _run(["run", str(target), "--workdir", str(workdir)], tmp_path,
                  {"COUNT_LOG": str(tmp_path / "count")})
    assert result.returncode == 2, result.stderr
    assert str(workdir) in result.stderr


def test_status_shows_the_run_and_how_to_resume_it(tmp_path: Path) -> None:
    target, workdir = _pipe(tmp_path), tmp_path / "work"
    env = {"COUNT_LOG": str(tmp_path / "count")}
    proc = subprocess.Popen([*_phasewise(), "run", str(target), "--workdir", str(workdir)],
                            cwd=tmp_path, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    live = None
    while time.monotonic() < deadline:
        got = _run(["status", "--workdir", str(workdir), "--json"], tmp_path)
        if got.returncode == 0 and json.loads(got.stdout)["status"] == "running":
            live = json.loads(got.stdout)
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    assert live is not None, "status never saw the run in progress"
    assert [p["name"] for p in live["phases"]] == [f"p{i}" for i in range(6)]
    text = _run(["status", "--workdir", str(workdir)], tmp_path)
    assert text.returncode == 0
    assert "was interrupted" in text.stdout
    assert "--resume" in text.stdout


def test_a_failed_run_prints_the_command_that_resumes_it(tmp_path: Path) -> None:
    target = tmp_path / "fails.py"
    target.write_text("from phasewise import Phase, Pipeline\n"
                      "def boom():\n    raise RuntimeError('x')\n"
                      "pipeline = Pipeline('fails', Phase('boom', boom))\n")
    result = _run(["run", str(target), "-e", "inline", "--workdir", "w"], tmp_path)
    assert result.returncode == 1
    assert f"phasewise run {target} -e inline --workdir w --resume" in result.stderr


def test_without_workdir_the_cli_keeps_runs_under_dot_phasewise(tmp_path: Path) -> None:
    target = _pipe(tmp_path)
    result = _run(["run", str(target)], tmp_path, {"COUNT_LOG": str(tmp_path / "count")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".phasewise" / "killme" / "pipeline-state.json").exists()
    status = _run(["status"], tmp_path)
    assert status.returncode == 0 and "'killme' completed" in status.stdout


def test_workdir_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    first, second = Workdir(tmp_path / "w"), Workdir(tmp_path / "w")
    first.create()
    first.lock()
    try:
        with pytest.raises(WorkdirLocked, match=f"process {os.getpid()}"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


CACHED = """
import os
from phasewise import Phase, Pipeline

def helper():
    return HELPER

def slow():
    fd = os.open(os.environ["COUNT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"slow\\n")
    os.close(fd)
    return helper()

pipeline = Pipeline("cached", Phase("slow", slow, cache=TTL),
                    Phase("after", lambda context: context["slow"] + 1, depends_on="slow"))
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_cached_phase_is_not_run_again_until_its_code_or_the_flag_says(
    executor: str, tmp_path: Path
) -> None:
    target, log = tmp_path / "cached.py", tmp_path / "count"
    env = {"COUNT_LOG": str(log)}

    def write(helper: int, ttl: str = "True") -> None:
        target.write_text(CACHED.replace("HELPER", str(helper)).replace("TTL", ttl))

    def run(*extra: str) -> dict:
        got = _run(["run", str(target), "-e", executor, "--json", *extra], tmp_path, env)
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)

    write(1)
    first = run()
    assert first["phases"][0]["cached"] is False
    second = run()
    assert second["phases"][0]["cached"] is True
    assert second["results"] == {"slow": 1, "after": 2}
    assert _count(log) == {"slow": 1}
    assert run("--no-cache")["phases"][0]["cached"] is False
    assert _count(log) == {"slow": 2}
    write(2)  # the helper the handler calls changed
    third = run()
    assert third["phases"][0]["cached"] is False and third["results"]["slow"] == 2
    listed = _run(["cache", "list"], tmp_path)
    assert listed.returncode == 0 and "slow" in listed.stdout
    cleared = _run(["cache", "clear"], tmp_path)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert run()["phases"][0]["cached"] is False
    write(2, '"500ms"')
    run()
    time.sleep(0.6)  # past the time to live: the entry no longer counts
    assert run()["phases"][0]["cached"] is False


def big(log: str) -> bytes:
    append(log, "big")
    return b"x" * (1 << 20)  # large: kept in a file of its own


def test_a_result_the_disk_cannot_take_warns_and_runs_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    from functools import partial

    from phasewise.durable import signing

    log, workdir = tmp_path / "log", tmp_path / "work"
    pipeline = Pipeline("full", Phase("big", partial(big, str(log))),
                        Phase("small", partial(counted, str(log), "small", 1)))

    def disk_full(path, value, meta=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(signing, "write_signed", disk_full)
        with pytest.warns(PhasewiseWarning, match="No space left on device"):
            first = pipeline.run(executor="inline", workdir=workdir)
    assert first.ok
    ledger = load_ledger(Workdir(workdir))
    assert ledger.phases["big"]["result"] is None  # recorded completed, result not kept
    again = pipeline.run(executor="inline", workdir=workdir, resume=True)
    assert again.ok and again.results["big"] == b"x" * (1 << 20)
    assert _count(log) == {"big": 2, "small": 1}


def test_a_tampered_result_is_refused_and_its_phase_runs_again(tmp_path: Path) -> None:
    from functools import partial

    log, workdir = tmp_path / "log", tmp_path / "work"
    pipeline = Pipeline("tamper", Phase("big", partial(big, str(log))))
    pipeline.run(executor="inline", workdir=workdir)
    (kept,) = (workdir / "_results").iterdir()
    data = bytearray(kept.read_bytes())
    data[-100] ^= 0xFF  # a byte of the pickle changed after it was signed
    kept.write_bytes(bytes(data))
    with pytest.warns(PhasewiseWarning, match="'big' runs again: its stored result was refused"):
        again = pipeline.run(executor="inline", workdir=workdir, resume=True)
    assert again.ok and again.results["big"] == b"x" * (1 << 20)
    assert _count(log) == {"big": 2}
