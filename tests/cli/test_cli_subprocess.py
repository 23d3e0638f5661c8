"""The installed ``phasewise`` script in real subprocesses, and the examples end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import phasewise


def _run(
    cmd: list[str], *args: object, env: dict[str, str] | None = None, timeout: float = 50
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.timeout(60)
def test_site_build_json(phasewise_cmd: list[str], repo: Path, tmp_path: Path) -> None:
    site = repo / "examples" / "site_build.py"
    proc = _run(phasewise_cmd, "run", site, "--json", "-j", "4", "--workdir", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "completed"
    assert [p["name"] for p in doc["phases"]] == ["discover", "parse", "render", "assets", "write"]
    assert all(p["status"] == "completed" for p in doc["phases"])
    summary = doc["results"]["write"]
    assert (summary["pages"], summary["files"]) == (20, 22)
    out = Path(summary["output_dir"])
    assert out == tmp_path / "run" / "write"  # each phase works in its own folder
    assert sorted(p.name for p in out.iterdir())[:2] == ["index.html", "page-00.html"]
    assert len(list(out.iterdir())) == 22
    assert "<h1>Page 3: on sagas</h1>" in (out / "page-03.html").read_text(encoding="utf-8")
    assert len(list((tmp_path / "run" / "render").glob("*.html"))) == 20
    assert "parse | parsed page-19" in proc.stderr  # captured lines, live, on stderr
    assert "[1/5] Discovering sources..." in proc.stderr  # labels in the progress lines
    # params: fewer pages, and no page of the first run is left in the site
    again = _run(phasewise_cmd, "run", site, "--json", "--workdir", tmp_path / "run",
                 "--param", "pages=3", "--param", "title=Three pages")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["results"]["write"]["files"] == 5
    assert len(list(out.iterdir())) == 5
    assert "<h1>Three pages</h1>" in (out / "index.html").read_text(encoding="utf-8")
    cached = _run(phasewise_cmd, "run", site, "--workdir", tmp_path / "run", "--param",
                  "pages=3", "--param", "title=Three pages")
    assert re.search(r"^  \[CACHED\] parse ", cached.stderr, re.M), cached.stderr


@pytest.mark.timeout(60)
def test_file_target_handlers_reach_other_processes(
    phasewise_cmd: list[str], repo: Path, tmp_path: Path
) -> None:
    """A file target is not importable in a worker; its handlers travel by value."""
    from phasewise.plugins.manager import executor_registry

    if "process" not in executor_registry().names():
        pytest.skip("no process executor installed")
    proc = _run(phasewise_cmd, "run", repo / "examples" / "site_build.py", "--json",
                "-e", "process", env={"SITE_BUILD_ROOT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["results"]["write"]["files"] == 22
    assert "parse | parsed page-19" in proc.stderr


@pytest.mark.timeout(60)
def test_cpu_heavy_reduces_every_chunk(phasewise_cmd: list[str], repo: Path) -> None:
    proc = _run(phasewise_cmd, "run", repo / "examples" / "cpu_heavy.py", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["phases"]) == 9
    assert doc["results"]["reduce"] == {"start": 230631, "steps": 443}
    assert "chunk_7 | chunk 7: longest chain" in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("example", ["site_build.py", "cpu_heavy.py"])
def test_examples_run_as_scripts(example: str, repo: Path, tmp_path: Path) -> None:
    proc = _run([sys.executable], repo / "examples" / example,
                env={"SITE_BUILD_ROOT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("{") and ("'pages': 20" in last or "'steps': 443" in last)


FAILING = """\
from phasewise import Phase, Pipeline

def explode():
    raise RuntimeError("kaboom")

pipeline = Pipeline("failing", Phase("explode", explode))
"""


@pytest.mark.timeout(60)
def test_failing_pipeline_exits_1(phasewise_cmd: list[str], tmp_path: Path) -> None:
    target = tmp_path / "failing.py"
    target.write_text(FAILING, encoding="utf-8")
    proc = _run(phasewise_cmd, "run", target)
    assert proc.returncode == 1
    assert "RuntimeError: kaboom" in proc.stderr
    assert 'raise RuntimeError("kaboom")' in proc.stderr  # the handler's traceback
    assert proc.stdout == ""


@pytest.mark.timeout(60)
def test_unknown_executor_exits_2_listing_installed(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "failing.py"
    target.write_text(FAILING, encoding="utf-8")
    proc = _run(phasewise_cmd, "run", target, env={"PHASEWISE_EXECUTOR": "nonexistent"})
    assert proc.returncode == 2
    assert "unknown executor 'nonexistent'" in proc.stderr
    assert "inline" in proc.stderr and "thread" in proc.stderr
    assert "(asked for by the PHASEWISE_EXECUTOR environment variable)" in proc.stderr
    assert "--executor" not in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_python_dash_m_entry_point() -> None:
    proc = _run([sys.executable, "-m", "phasewise.cli.main"], "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"phasewise {phasewise.__version__}"


@pytest.mark.timeout(60)
def test_json_stdout_stays_clean_of_raw_fd_writes(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "noisy.py"
    target.write_text(textwrap.dedent("""\
        import os, subprocess, sys
        from phasewise import Phase, Pipeline

        def noisy():
            print("python print")
            os.write(1, b"raw fd write\\n")
            subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
            return "ok"

        pipeline = Pipeline("noisy", Phase("noisy", noisy))
        """), encoding="utf-8")
    proc = _run(phasewise_cmd, "run", target, "--json", "--no-capture")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"] == {"noisy": "ok"}
    for text in ("python print", "raw fd write", "child process"):
        assert text in proc.stderr


SLOW = """\
import time
from phasewise import Phase, Pipeline

def first():
    return "kept"

def slow():
    print("slow started", flush=True)
    time.sleep(20)

pipeline = Pipeline("slow", Phase("first", first), Phase("slow", slow, depends_on=("first",)),
                    capture_output=True)
"""


def _wait_for(proc: subprocess.Popen[str], text: str, deadline: float) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never appeared; saw {seen}")


@pytest.mark.timeout(60)
def test_ctrl_c_exits_130_with_summary(phasewise_cmd: list[str], tmp_path: Path) -> None:
    target = tmp_path / "slow.py"
    target.write_text(SLOW, encoding="utf-8")
    proc = subprocess.Popen(
        [*phasewise_cmd, "run", str(target), "--json"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # a child of a background job may inherit SIGINT ignored; give it the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for(proc, "slow | slow started", time.monotonic() + 30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    doc: dict[str, Any] = json.loads(out)
    assert {p["name"]: p["status"] for p in doc["phases"]} == {
        "first": "completed", "slow": "cancelled"}
    assert doc["results"] == {"first": "kept"}
    assert "pipeline 'slow' interrupted" in err
    assert "Traceback" not in err


# ── first hour: -j, list, the summary, option errors, -v, broken executors ──

SERIAL = """\
import os
from phasewise import Phase, Pipeline

def env():
    return os.environ.get("PHASEWISE_DEBUG")

def explode(context):
    raise RuntimeError("kaboom")

def never(context):
    return "not reached"

pipeline = Pipeline("serial", Phase("zeta", env), Phase("alpha", env),
                    Phase("explode", explode, depends_on=("zeta",)),
                    Phase("never", never, depends_on=("explode",)))
"""


def _serial(tmp_path: Path) -> Path:
    target = tmp_path / "serial.py"
    target.write_text(SERIAL, encoding="utf-8")
    return target


def _table_rows(text: str) -> list[list[str]]:
    """The rows of the last table in ``text``, split on runs of 2+ spaces."""
    lines = text.splitlines()
    rule = max(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line))
    rows = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.mark.timeout(60)
def test_j_on_phases_that_run_alone_warns_once_and_list_says_so(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    target = _serial(tmp_path)
    proc = _run(phasewise_cmd, "run", target, "-j", "4")
    assert proc.returncode == 1, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "-j 4 has no effect" in warnings[0]
    assert "Pipeline(..., parallel=True) or Phase(..., parallel=True)" in warnings[0]
    assert "warning" not in _run(phasewise_cmd, "run", target).stderr
    listed = _run(phasewise_cmd, "list", target)
    assert listed.returncode == 0
    assert listed.stdout.rstrip().splitlines()[-1] == (
        "every phase runs alone (parallel=False): -j has no effect")


@pytest.mark.timeout(60)
def test_summary_in_execution_order_saying_what_never_started(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    target = _serial(tmp_path)
    proc = _run(phasewise_cmd, "run", target)
    assert proc.returncode == 1
    assert "pipeline 'serial' failed" in proc.stderr
    assert "; phases in execution order" in proc.stderr
    summary = re.findall(r"^  \[([A-Z]+)\] +(\S+) +(.*)$", proc.stderr, re.M)
    listed = _table_rows(_run(phasewise_cmd, "list", target).stdout)
    assert [name for _, name, _ in summary] == [row[1] for row in listed]
    assert [name for _, name, _ in summary] == ["alpha", "zeta", "explode", "never"]
    tags = {name: tag for tag, name, _ in summary}
    assert tags == {"alpha": "OK", "zeta": "OK", "explode": "FAIL", "never": "CANCELLED"}
    assert dict((name, rest) for _, name, rest in summary)["never"].startswith("not started")


@pytest.mark.timeout(60)
def test_bad_executor_option_prints_only_the_error(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    """Needs the scheduler to create the run's executors before @@PIPELINE_START."""
    proc = _run(phasewise_cmd, "run", _serial(tmp_path), "-O", "bogus_option=1")
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith("Error: executor 'thread' cannot be created")
    assert proc.stdout == ""


@pytest.mark.timeout(60)
def test_verbose_reaches_workers_and_shows_infrastructure_tracebacks(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    target = _serial(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PHASEWISE_DEBUG"}
    quiet = subprocess.run([*phasewise_cmd, "run", str(target), "--json", "-e", "subprocess"],
                           capture_output=True, text=True, timeout=50, env=env)
    assert json.loads(quiet.stdout)["results"] == {"alpha": None, "zeta": None}
    loud = subprocess.run(
        [*phasewise_cmd, "run", str(target), "--json", "-e", "subprocess", "-v"],
        capture_output=True, text=True, timeout=50, env=env)
    assert json.loads(loud.stdout)["results"] == {"alpha": "1", "zeta": "1"}  # in the workers
    bad = subprocess.run([*phasewise_cmd, "run", str(target), "-v", "-O", "bogus_option=1"],
                         capture_output=True, text=True, timeout=50, env=env)
    assert bad.returncode == 2
    assert "Traceback (most recent call last)" in bad.stderr
    assert bad.stderr.rstrip().splitlines()[-1].startswith("Error: executor 'thread'")


@pytest.mark.timeout(60)
def test_an_executor_that_cannot_work_is_one_error_line(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    proc = _run(phasewise_cmd, "run", _serial(tmp_path), "-e", "subprocess",
                "-O", "python=/nonexistent")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("Error: executor 'subprocess': ")
    assert "/nonexistent" in line
