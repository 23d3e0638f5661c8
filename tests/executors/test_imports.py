"""What a worker imports: handlers defined where users put them reach every executor, and a
script without a ``__main__`` guard cannot multiply itself (``phasewise.core.bootstrap``).

The handlers of this module are pickled by reference, as a user's test module's are:
a worker finds this module on the import path the parent gives it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
from processes import MARK, marked

from phasewise import Phase, Pipeline
from phasewise.core import bootstrap
from phasewise.core.errors import BootstrapError
from phasewise.plugins.manager import executor_registry

pytestmark = pytest.mark.timeout(90)

EXECUTORS = executor_registry().names()
PROCESS_EXECUTORS = [e for e in ("process", "subprocess") if e in EXECUTORS]


def _phasewise() -> list[str]:
    script = shutil.which("phasewise")
    return [script] if script else [sys.executable, "-m", "phasewise.cli.main"]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ── handlers where users put them ───────────────────────────────────────────

STEPS = """
import os

def load():
    return [3, 1, 2]

def arrange(context):
    return {"sorted": sorted(context["load"]), "module": __name__, "cwd": os.getcwd()}
"""

BUILD = """
from phasewise import Phase, Pipeline
from steps import arrange, load

pipeline = Pipeline(
    "sibling",
    Phase("load", load),
    Phase("arrange", arrange, depends_on="load"),
)
"""


def _sibling_project(tmp_path: Path) -> Path:
    _write(tmp_path / "project" / "steps.py", STEPS)
    return _write(tmp_path / "project" / "build.py", BUILD)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_handler_in_a_sibling_module_runs_from_another_directory(
    executor: str, tmp_path: Path
) -> None:
    build = _sibling_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([*_phasewise(), "run", str(build), "-e", executor, "--json"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    arranged = json.loads(proc.stdout)["results"]["arrange"]
    assert arranged["sorted"] == [1, 2, 3]
    assert arranged["module"] == "steps"  # imported in the worker, not pickled by value


@pytest.mark.skipif("subprocess" not in EXECUTORS, reason="no subprocess executor")
def test_a_sibling_module_imports_in_a_worker_started_in_another_cwd(tmp_path: Path) -> None:
    build = _sibling_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    proc = subprocess.run(
        [*_phasewise(), "run", "project/build.py", "-e", "subprocess", "-O", f"cwd={other}",
         "--json"],
        cwd=build.parent.parent, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    arranged = json.loads(proc.stdout)["results"]["arrange"]
    assert arranged["sorted"] == [1, 2, 3]
    assert arranged["cwd"] == str(other)


def where_am_i() -> str:
    return __name__


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_handler_defined_in_a_test_module_runs_there(executor: str) -> None:
    result = Pipeline("here", Phase("where", where_am_i)).run(executor=executor)
    assert result.ok, result.state
    assert result.results["where"] == __name__


@pytest.mark.parametrize("executor", PROCESS_EXECUTORS)
def test_a_relative_import_path_entry_resolves_against_the_parents_cwd(
    executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "lib" / "relative_steps_mod.py", "def answer():\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["lib", *sys.path])
    import relative_steps_mod  # type: ignore[import-not-found]

    try:
        pipeline = Pipeline("relative", Phase("answer", relative_steps_mod.answer))
        options = {"start_method": "forkserver"} if executor == "process" else {"cwd": "/"}
        result = pipeline.run(executor=executor, executor_options=options)
    finally:
        sys.modules.pop("relative_steps_mod", None)
    assert result.ok, result.state
    assert result.results == {"answer": 42}


def test_prepare_message_makes_every_entry_absolute(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", "rel", *sys.path])
    message = bootstrap.prepare_message()
    assert message.sys_path[:2] == (str(tmp_path), str(tmp_path / "rel"))
    assert all(os.path.isabs(entry) for entry in message.sys_path)
    assert set(message.interpreter) <= set(message.sys_path)
    assert str(tmp_path) not in message.interpreter
    assert message.depth == bootstrap.worker_depth() + 1
    assert message.pid == os.getpid()


def test_another_python_keeps_its_own_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "_depth", bootstrap.worker_depth())
    parent = os.getpid() + 1  # as if sent by another process
    monkeypatch.setattr(sys, "path", ["/worker/own", "/worker/lib"])
    bootstrap.apply(bootstrap.wire.Prepare(
        ("/parent/project", "/parent/python/lib"), ("/parent/python/lib",), "/parent/python",
        1, parent))
    assert sys.path == ["/parent/project", "/worker/own", "/worker/lib"]
    assert bootstrap.worker_depth() == 1
    monkeypatch.setattr(sys, "path", ["/worker/own"])
    bootstrap.apply(bootstrap.wire.Prepare(("/p", "/lib"), ("/lib",), sys.prefix, 2, parent))
    assert sys.path == ["/p", "/lib", "/worker/own"]


def test_a_message_this_process_made_changes_nothing_here(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "path", ["/some/where", *sys.path])
    message = bootstrap.prepare_message()
    before, depth = list(sys.path), bootstrap.worker_depth()
    bootstrap.apply(message)
    assert (sys.path, bootstrap.worker_depth()) == (before, depth)


# ── a module the worker cannot import ───────────────────────────────────────


@pytest.mark.parametrize("executor", PROCESS_EXECUTORS)
def test_a_module_missing_in_the_worker_is_named_with_the_interpreter(executor: str) -> None:
    ghost = types.ModuleType("ghost_module_only_in_the_parent")
    exec("def handler():\n    return 1\n", ghost.__dict__)
    sys.modules[ghost.__name__] = ghost
    try:
        options = {"start_method": "forkserver"} if executor == "process" else {}
        result = Pipeline("ghost", Phase("haunted", ghost.handler)).run(
            executor=executor, executor_options=options)
    finally:
        del sys.modules[ghost.__name__]
    error = result.state.phase("haunted").error
    assert result.status == "failed"
    assert "phase 'haunted'" in error
    assert "'ghost_module_only_in_the_parent'" in error
    assert sys.executable in error
    assert "PYTHONPATH" in error


# ── an unguarded script ─────────────────────────────────────────────────────

UNGUARDED = """
from phasewise import Phase, Pipeline

def work():
    return 1

pipeline = Pipeline("unguarded", Phase("work", work), Phase("more", work))
pipeline.run(executor={executor!r}, executor_options={options!r}).raise_for_status()
"""


def _count_while(proc: subprocess.Popen[str], token: str, limit: float) -> tuple[int, float]:
    """Poll the processes marked with ``token`` until ``proc`` ends: the most seen at once
    and how long it took; kills it past ``limit`` seconds."""
    most, started = 0, time.monotonic()
    while proc.poll() is None:
        most = max(most, len(marked(token)))
        if time.monotonic() - started > limit:
            proc.kill()
            break
        time.sleep(0.02)
    return most, time.monotonic() - started


@pytest.mark.parametrize(("executor", "options"), [
    ("subprocess", {}),
    ("process", {}),
    ("process", {"start_method": "forkserver"}),
    ("process", {"start_method": "spawn"}),
])
def test_an_unguarded_script_imported_fails_at_once_with_the_guard_message(
    executor: str, options: dict[str, str], tmp_path: Path
) -> None:
    if executor not in EXECUTORS:
        pytest.skip(f"no {executor} executor")
    _write(tmp_path / "unguarded_t.py", UNGUARDED.format(executor=executor, options=options))
    token = f"bomb-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", "import unguarded_t"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, MARK: token})
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    most, took = _count_while(proc, token, limit=30)
    reader.join(5)
    err = "".join(err_lines)
    assert proc.returncode not in (0, None), err
    assert took < 30, "the script multiplied itself until it was killed"
    assert most <= 2, f"{most} processes at once"
    assert "BootstrapError" in err
    assert "unguarded_t.py" in err
    assert 'if __name__ == "__main__":' in err


WORKER_SIDE = """
from phasewise import Phase, Pipeline
from phasewise.core import bootstrap

def work():
    return 1

if bootstrap.worker_depth():  # top-level code only a worker runs
    Pipeline("again", Phase("work", work)).run(executor="subprocess")
"""

WORKER_SIDE_MAIN = """
from phasewise import Phase, Pipeline
from worker_side import work

if __name__ == "__main__":
    pipeline = Pipeline("outer", Phase("outer", work))
    pipeline.run(executor={executor!r}, executor_options={options!r}).raise_for_status()
"""


@pytest.mark.parametrize(("executor", "options"), [
    ("subprocess", {}),
    ("process", {"start_method": "forkserver"}),  # a forked worker never imports it
])
def test_a_module_that_starts_a_run_when_a_worker_imports_it_stops_the_run(
    executor: str, options: dict[str, str], tmp_path: Path
) -> None:
    if executor not in EXECUTORS:
        pytest.skip(f"no {executor} executor")
    _write(tmp_path / "worker_side.py", WORKER_SIDE)
    main = _write(tmp_path / "main.py",
                  WORKER_SIDE_MAIN.format(executor=executor, options=options))
    token = f"worker-side-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, str(main)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, MARK: token})
    most, _ = _count_while(proc, token, limit=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode not in (0, None), err
    assert "BootstrapError" in err
    assert "worker_side.py" in err
    assert "unpickling phase 'outer'" in err
    # the script, its workers, and a pool's forkserver and resource tracker
    assert most <= 3 + (os.cpu_count() or 1), f"{most} processes at once"


# ── pipelines inside handlers ───────────────────────────────────────────────


def inner_step() -> int:
    return os.getpid()


def run_inner(executor: str) -> dict[str, int]:
    inner = Pipeline("inner", Phase("a", inner_step, parallel=True),
                     Phase("b", inner_step, parallel=True))
    result = inner.run(executor=executor, max_workers=2)
    result.raise_for_status()
    return {"outer": os.getpid(), **result.results}


@pytest.mark.parametrize("executor", PROCESS_EXECUTORS)
def test_a_pipeline_run_inside_a_handler_completes(
    executor: str, no_process_left: str
) -> None:
    result = Pipeline("outer", Phase("nest", lambda: run_inner(executor))).run(
        executor=executor)
    assert result.ok, result.state
    pids = result.results["nest"]
    assert pids["outer"] != os.getpid()
    assert pids["a"] != pids["outer"] and pids["b"] != pids["outer"]


def nest_forever(level: int) -> int:
    inner = Pipeline(f"level{level}", Phase("down", lambda: nest_forever(level + 1)))
    result = inner.run(executor="subprocess")
    result.raise_for_status()
    return level


@pytest.mark.skipif("subprocess" not in EXECUTORS, reason="no subprocess executor")
def test_pipelines_nested_without_end_stop_at_the_depth_limit() -> None:
    with pytest.raises(BootstrapError, match="too deeply"):
        nest_forever(0)
