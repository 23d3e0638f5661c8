"""The run-observing hooks: fired for library runs as for CLI runs, each implementation
on its own (one that raises is switched off, the run goes on), and the built-in
reporters on them — ``--events FILE`` followed while the run goes.
"""

from __future__ import annotations

import _thread
import json
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_distributions import build_wheel, phasewise_command, pip_install, site_env

import phasewise
from phasewise import Phase, Pipeline
from phasewise.plugins import PluginWarning
from phasewise.plugins.manager import plugin_manager

pytestmark = pytest.mark.timeout(120)


def _one() -> int:
    return 1


def _interrupt() -> None:
    _thread.interrupt_main()  # what Ctrl-C does to the main thread
    time.sleep(5)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @phasewise.hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Any, executor: str) -> None:
        self.calls.append(("start", pipeline.name, executor))

    @phasewise.hookimpl
    def phasewise_action(self, pipeline: Any, action: Any, state: Any) -> None:
        self.calls.append(("action", action.type))

    @phasewise.hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        self.calls.append(("finish", result.status, result.interrupted, type(error)))


class _RaisesOnAction:
    @phasewise.hookimpl
    def phasewise_action(self, pipeline: Any, action: Any, state: Any) -> None:
        raise RuntimeError("this reporter is broken")


@pytest.fixture
def register() -> Iterator[Callable[[Any], None]]:
    """Registers a plugin with phasewise's plugin manager for the length of the test."""
    pm = plugin_manager()
    plugins: list[Any] = []

    def registering(plugin: Any) -> None:
        pm.register(plugin)
        plugins.append(plugin)

    yield registering
    for plugin in plugins:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
    pm.records = [r for r in pm.records if not r.in_run]


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_library_run_fires_every_run_hook(executor: str, register: Callable[[Any], None]) -> None:
    recorder = _Recorder()
    register(recorder)
    result = Pipeline("lib", Phase("a", _one), Phase("b", _one, depends_on=("a",))).run(
        executor=executor)
    assert result.ok
    assert recorder.calls[0] == ("start", "lib", executor)
    actions = [call[1] for call in recorder.calls[1:-1]]
    assert actions[0] == "@@PIPELINE_START" and actions[-1] == "@@PIPELINE_COMPLETE"
    assert actions.count("@@PHASE_COMPLETE") == 2
    assert recorder.calls[-1] == ("finish", "completed", False, type(None))


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_run_finish_is_told_of_ctrl_c_and_the_caller_still_gets_it(
    executor: str, register: Callable[[Any], None],
) -> None:
    recorder = _Recorder()
    register(recorder)
    with pytest.raises(KeyboardInterrupt):
        Pipeline("stop", Phase("a", _interrupt)).run(executor=executor)
    assert recorder.calls[-1] == ("finish", "cancelled", True, KeyboardInterrupt)


def test_a_raising_run_hook_is_warned_about_once_and_the_run_goes_on(
    register: Callable[[Any], None],
) -> None:
    broken, recorder = _RaisesOnAction(), _Recorder()
    register(broken)
    register(recorder)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = Pipeline("p", *(Phase(f"p{i}", _one) for i in range(5))).run(
            executor="thread")
    assert result.ok and result.results == {f"p{i}": 1 for i in range(5)}
    messages = [str(w.message) for w in seen if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1, messages
    assert "failed during the run, and is switched off" in messages[0]
    assert "its phasewise_action() raised RuntimeError: this reporter is broken" in messages[0]
    assert not plugin_manager().is_registered(broken)
    # the other plugin saw every action all the same
    assert recorder.calls[-1] == ("finish", "completed", False, type(None))
    assert sum(call == ("action", "@@PHASE_COMPLETE") for call in recorder.calls) == 5


# ── through the CLI, beside a real third-party distribution ─────────────────

RAISING_REPORTER = """
import phasewise

@phasewise.hookimpl
def phasewise_run_start(pipeline, store, executor):
    raise ValueError("no terminal to draw on")
"""

NESTED = """
from phasewise import Phase, Pipeline

def inner_work():
    return 2

def outer():
    return Pipeline("inner", Phase("inner_work", inner_work)).run(executor="inline").results

pipeline = Pipeline("outer", Phase("outer", outer))
"""

FOLLOWED = """
import json, os, time
from phasewise import Phase, Pipeline

def waits_for_its_line():
    print("ping")
    path = os.environ["EVENTS"]
    for _ in range(500):  # its line must reach the file while it runs
        with open(path, encoding="utf-8") as f:
            if any(json.loads(line)["payload"].get("line") == "ping"
                   for line in f if '"@@PHASE_LOG"' in line):
                return "seen"
        time.sleep(0.02)
    return "not seen"

def big():
    return "x" * 10_000

pipeline = Pipeline("followed", Phase("waits", waits_for_its_line), Phase("big", big))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("wheels")
    wheel = build_wheel(build, "phasewise-badreport",
                        {"phasewise_badreport.py": textwrap.dedent(RAISING_REPORTER)},
                        {"badreport": "phasewise_badreport"})
    site = tmp_path_factory.mktemp("site")
    pip_install(site, wheel)
    return site


def _phasewise(site: Path, *args: str, cwd: Path,
               **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*phasewise_command(), *args], capture_output=True, text=True,
                          env=site_env(site, **env), cwd=cwd, timeout=90)


def test_a_third_party_run_hook_that_raises_is_one_warning_and_the_run_completes(
    site: Path, tmp_path: Path
) -> None:
    target = tmp_path / "nested.py"
    target.write_text(NESTED, encoding="utf-8")
    ran = _phasewise(site, "run", str(target), "-e", "thread", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    warned = [line for line in ran.stderr.splitlines() if "phasewise: warning:" in line]
    assert warned == [
        "phasewise: warning: plugin 'badreport' (phasewise-badreport 1.0) failed during "
        "the run, and is switched off: its phasewise_run_start() raised ValueError: no "
        "terminal to draw on"]
    assert "Traceback" not in ran.stderr
    # the CLI's progress reporter followed the run it started, not the nested one
    assert "[1/1] outer..." in ran.stderr
    assert "inner_work" not in ran.stderr


def test_events_file_is_written_as_the_run_goes(site: Path, tmp_path: Path) -> None:
    target = tmp_path / "followed.py"
    target.write_text(FOLLOWED, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    ran = _phasewise(site, "run", str(target), "--capture", "--events", str(events), "--json",
                     cwd=tmp_path, EVENTS=str(events))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["results"]["waits"] == "seen"
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert all(set(line) == {"time", "type", "payload"} for line in lines)
    assert lines[0]["type"] == "run_start"
    assert lines[0]["payload"]["pipeline"] == "followed"
    assert {p["name"] for p in lines[0]["payload"]["phases"]} == {"waits", "big"}
    assert lines[-1]["type"] == "run_finish"
    assert lines[-1]["payload"]["status"] == "completed"
    times = [line["time"] for line in lines]
    assert times == sorted(times)
    done = {line["payload"]["name"]: line["payload"] for line in lines
            if line["type"] == "@@PHASE_COMPLETE"}
    assert done["waits"]["result"] == "seen"
    assert "result" not in done["big"] and done["big"]["result_type"] == "str"


def test_events_to_stdout_keeps_the_runs_own_output_off_it(site: Path, tmp_path: Path) -> None:
    target = tmp_path / "nested.py"
    loud = "print('as the file loads')\n" + NESTED.replace("return 2", "print('loud'); return 2")
    target.write_text(loud, encoding="utf-8")
    ran = _phasewise(site, "run", str(target), "--no-capture", "--events", "-", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    kinds = [json.loads(line)["type"] for line in ran.stdout.splitlines()]
    assert kinds[0] == "run_start" and kinds[-1] == "run_finish"
    assert "as the file loads" in ran.stderr and "loud" in ran.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--events", "-", "--json"], "--json and --events - would both write to stdout"),
    (["--events", "no/such/dir/events.jsonl"], "--events: cannot write"),
])
def test_events_bad_input_is_exit_2(site: Path, tmp_path: Path, args: list[str],
                                    message: str) -> None:
    target = tmp_path / "nested.py"
    target.write_text(NESTED, encoding="utf-8")
    ran = _phasewise(site, "run", str(target), *args, cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


def test_the_hooks_cost_nothing_when_no_plugin_implements_them(tmp_path: Path) -> None:
    """With no plugin observing runs, a run does not observe its store for them."""
    code = textwrap.dedent("""
        import phasewise.plugins.run_hooks as run_hooks
        from phasewise import Phase, Pipeline, Store
        store = Store(Pipeline("p", Phase("a", lambda: 1)).build_reducer())
        print(run_hooks.observe_run(None, store, "inline"))
    """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=site_env(tmp_path),
                         timeout=60)
    assert ran.stdout.strip() == "None", ran.stderr
