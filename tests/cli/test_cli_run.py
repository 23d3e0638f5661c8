"""``phasewise run`` in-process (CliRunner): progress, summary, options, exit codes."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import phasewise
from phasewise.cli.main import parse_executor_options
from phasewise.core.errors import ExecutorError
from phasewise.plugins.manager import executor_registry, plugin_manager

TWO_PHASES = """
def first():
    print("hello from first")
    return {"n": 1}

def second(context):
    print("second sees", context["first"]["n"])
    return context["first"]["n"] + 1

pipeline = Pipeline(
    "two",
    Phase("first", first),
    Phase("second", second, depends_on=("first",)),
    capture_output=CAPTURE,
)
"""

FAILING = """
def ok():
    return 1

def broken_handler():
    raise ValueError("boom in handler")

def after():
    return 2

pipeline = Pipeline(
    "failing",
    Phase("ok", ok),
    Phase("broken", broken_handler, depends_on=("ok",)),
    Phase("after", after, depends_on=("broken",)),
)
"""


def _two(write_target: Callable[..., Path], capture: bool = True) -> Path:
    return write_target(TWO_PHASES.replace("CAPTURE", str(capture)))


def _summary(stderr: str) -> list[tuple[str, str, str]]:
    """The summary's ``  [TAG] name  rest`` lines as (tag, name, rest)."""
    found = []
    for line in stderr.splitlines():
        match = re.fullmatch(r"  \[([A-Z]+)\] +(\S+) +(.*)", line)
        if match:
            found.append((match[1], match[2], match[3]))
    return found


def _json(result: Result) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_completed_run_exits_0_with_progress_and_summary_on_stderr(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", _two(write_target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    err = result.stderr
    lines = err.splitlines()
    assert "[1/2] first..." in lines and "[2/2] second..." in lines
    # second starts after first has printed its line: first was done by then
    assert err.index("first | hello from first") < err.index("[2/2] second...")
    assert "pipeline 'two' completed" in err
    summary = _summary(err)
    assert [(tag, name) for tag, name, _ in summary] == [("OK", "first"), ("OK", "second")]
    assert all(re.fullmatch(r"\(\d+\.\d+s\)", rest) for _, _, rest in summary)


def test_captured_lines_are_prefixed_by_phase(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", _two(write_target, capture=True))
    assert "first | hello from first" in result.stderr
    assert "second | second sees 1" in result.stderr
    assert "hello from first" not in result.stdout


def test_capture_follows_the_pipeline_unless_overridden(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = _two(write_target, capture=False)
    plain = invoke("run", path)
    assert "hello from first" in plain.stdout  # passed through untouched
    assert "first | hello" not in plain.stderr
    captured = invoke("run", path, "--capture")
    assert "first | hello from first" in captured.stderr
    assert "hello from first" not in captured.stdout
    off = invoke("run", _two(write_target, capture=True), "--no-capture")
    assert "hello from first" in off.stdout
    assert "first | hello" not in off.stderr


def test_failed_phase_exits_1_and_shows_handler_traceback(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(FAILING))
    assert result.exit_code == 1
    err = result.stderr
    assert "[FAIL] broken: ValueError: boom in handler" in err.splitlines()
    summary = {name: (tag, rest) for tag, name, rest in _summary(err)}
    assert summary["broken"][0] == "FAIL"
    assert summary["broken"][1].endswith("ValueError: boom in handler")
    assert summary["after"] == ("CANCELLED", "not started: phase 'broken' failed")
    assert "Traceback (most recent call last)" in err
    assert "in broken_handler" in err  # the handler's own frame
    assert "pipeline 'failing' failed" in err


def test_retry_and_skip_transitions_are_reported(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        def flaky():
            raise RuntimeError("flaked")

        def optional():
            raise KeyError("missing")

        pipeline = Pipeline(
            "policies",
            Phase("optional", optional, policy=PhasePolicy(on_fail="skip")),
            Phase("flaky", flaky, depends_on=("optional",),
                  policy=PhasePolicy(on_fail="retry", max_retries=1, retry_delay=0)),
        )
        """
    )
    result = invoke("run", path, "-e", "inline")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "[RETRY] flaky: RuntimeError: flaked; attempt 2 of 2 follows" in lines
    assert "[2/2] flaky... (attempt 2)" in lines
    assert "[SKIP] optional: KeyError: 'missing'" in lines
    summary = {name: (tag, rest) for tag, name, rest in _summary(result.stderr)}
    assert summary["optional"][0] == "SKIP" and summary["optional"][1].endswith("'missing'")
    assert summary["flaky"][0] == "FAIL"
    assert re.match(r"\(\d+\.\d+s, 2 attempts\)  RuntimeError: flaked", summary["flaky"][1])


def test_fail_fast_cancels_running_phases(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        import threading

        release, started = threading.Event(), threading.Event()

        def fails():
            started.wait(5.0)  # fail while the other phase runs, not before it starts
            raise RuntimeError("fast failure")

        def waits():
            started.set()
            release.wait(1.0)
            return "finished"

        pipeline = Pipeline(
            "ff",
            Phase("fails", fails, parallel=True),
            Phase("waits", waits, parallel=True),
        )
        """
    )
    fast = invoke("run", path, "--fail-fast", "--json", "-j", "2")
    assert fast.exit_code == 1
    statuses = {p["name"]: p["status"] for p in _json(fast)["phases"]}
    assert statuses == {"fails": "failed", "waits": "cancelled"}
    assert "[CANCELLED] waits: cancelled: phase 'fails' failed (fail_fast)" in fast.stderr
    assert ("CANCELLED", "waits") in [(tag, name) for tag, name, _ in _summary(fast.stderr)]
    slow = invoke("run", path, "--json", "-j", "2")
    assert slow.exit_code == 1
    assert {p["name"]: p["status"] for p in _json(slow)["phases"]}["waits"] == "completed"


def test_json_is_all_there_is_on_stdout(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        def data():
            print("noise on stdout")
            return {"a": [1, 2.5, True, None]}

        def opaque(context):
            return {1, 2}

        pipeline = Pipeline("j", Phase("data", data), Phase("opaque", opaque,
                            depends_on=("data",)))
        """
    )
    result = invoke("run", path, "--json", "--no-capture")
    assert result.exit_code == 0
    doc = _json(result)  # fails if anything else is on stdout
    assert set(doc) == {"pipeline", "status", "elapsed", "progress", "phases", "results"}
    assert doc["pipeline"] == "j"
    assert doc["status"] == "completed"
    assert doc["results"] == {"data": {"a": [1, 2.5, True, None]}, "opaque": "{1, 2}"}
    assert [p["name"] for p in doc["phases"]] == ["data", "opaque"]
    assert "noise on stdout" in result.stderr


def test_json_for_a_failed_run(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(FAILING), "--json")
    assert result.exit_code == 1
    doc = _json(result)
    assert doc["status"] == "failed"
    broken = next(p for p in doc["phases"] if p["name"] == "broken")
    assert broken["error"] == "ValueError: boom in handler"
    assert doc["results"] == {"ok": 1}


OVERLAP = """
import time

def stamp():
    start = time.monotonic()
    time.sleep(0.15)
    return [start, time.monotonic()]

pipeline = Pipeline("o", Phase("a", stamp, parallel=True), Phase("b", stamp, parallel=True))
"""


def _overlap(result: Result) -> bool:
    (a0, a1), (b0, b1) = _json(result)["results"].values()
    return bool(a0 < b1 and b0 < a1)


@pytest.mark.parametrize(("workers", "overlaps"), [("1", False), ("2", True)])
def test_max_workers_limits_concurrency(
    workers: str, overlaps: bool, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(OVERLAP), "--json", "-j", workers)
    assert result.exit_code == 0
    assert _overlap(result) is overlaps


WHERE = """
import threading

def where():
    return threading.current_thread().name

pipeline = Pipeline("w", Phase("where", where))
"""


def test_executor_option_reaches_the_factory(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(WHERE), "--json", "-O", "thread_name_prefix=custom")
    assert result.exit_code == 0, result.stderr
    assert _json(result)["results"]["where"].startswith("custom-")


def test_executor_from_environment(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(WHERE)
    inline = invoke("run", path, "--json", env={"PHASEWISE_EXECUTOR": "inline"})
    assert _json(inline)["results"]["where"] == "MainThread"
    threaded = invoke("run", path, "--json", env={"PHASEWISE_EXECUTOR": "thread"})
    assert _json(threaded)["results"]["where"] != "MainThread"
    flag_wins = invoke("run", path, "--json", "-e", "inline", env={"PHASEWISE_EXECUTOR": "x"})
    assert _json(flag_wins)["results"]["where"] == "MainThread"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (("workers=4",), {"workers": 4}),
        (("delay=0.5",), {"delay": 0.5}),
        (("verbose=true", "quiet=false"), {"verbose": True, "quiet": False}),
        (("address=tcp://127.0.0.1:8786",), {"address": "tcp://127.0.0.1:8786"}),
        (("name=\"4\"",), {"name": "4"}),
        (("expr=a=b",), {"expr": "a=b"}),
        (("empty=",), {"empty": ""}),
        (("n=1", "n=2"), {"n": 2}),
    ],
)
def test_parse_executor_options(raw: tuple[str, ...], expected: dict[str, Any]) -> None:
    assert parse_executor_options(raw) == expected


# ── bad input: exit 2, a short message, no traceback ───────────────────────


def _usage_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr


def test_unknown_executor_lists_installed(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", _two(write_target), "--executor", "warp")
    _usage_error(result, "unknown executor 'warp'", "inline", "thread")
    assert "start" not in result.stderr


def test_unknown_executor_in_a_phase_override(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(
        """
        def f():
            return 1

        pipeline = Pipeline("o", Phase("special", f, executor="gpu"))
        """
    )
    _usage_error(invoke("run", path), "unknown executor 'gpu'", "phase 'special'")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_workers_must_be_positive(
    value: str, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    _usage_error(invoke("run", _two(write_target), "-j", value), "--max-workers", value)


@pytest.mark.parametrize("option", ["novalue", "=3", "two words=1"])
def test_malformed_executor_option(
    option: str, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    _usage_error(invoke("run", _two(write_target), "-O", option), "KEY=VALUE", repr(option))


def test_option_the_executor_does_not_take(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", _two(write_target), "-O", "bogus_option=1")
    _usage_error(result, "executor 'thread'", "bogus_option")


# ── Ctrl-C and the plugin hooks ─────────────────────────────────────────────

INTERRUPTED = """
import _thread
import threading

gate = threading.Event()

def first():
    return "kept"

def interrupt():
    _thread.interrupt_main()   # what Ctrl-C does to the main thread
    gate.wait(5)

def never():
    return "not reached"

pipeline = Pipeline(
    "ctrl_c",
    Phase("first", first),
    Phase("interrupt", interrupt, depends_on=("first",)),
    Phase("never", never, depends_on=("interrupt",)),
)
"""


@pytest.mark.timeout(30)
def test_interrupt_prints_summary_and_exits_130(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(INTERRUPTED), "--json", "-e", "thread")
    assert result.exit_code == 130, result.output
    doc = _json(result)
    statuses = {p["name"]: p["status"] for p in doc["phases"]}
    assert statuses == {"first": "completed", "interrupt": "cancelled", "never": "cancelled"}
    assert doc["results"] == {"first": "kept"}
    assert "pipeline 'ctrl_c' interrupted" in result.stderr


class _Recorder:
    """A plugin that records the run hooks it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.actions: list[tuple[str, str | None, str]] = []

    @phasewise.hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Any, executor: str) -> None:
        seen: list[str] = []
        store.subscribe(lambda: seen.append(store.state.status))
        self.calls.append(("start", (pipeline.name, executor, seen)))

    @phasewise.hookimpl
    def phasewise_action(self, pipeline: Any, action: Any, state: Any) -> None:
        self.actions.append((action.type, (action.payload or {}).get("name")
                             if isinstance(action.payload, dict) else None, state.status))

    @phasewise.hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any) -> None:
        self.calls.append(("finish", (pipeline.name, result.status, dict(result.results))))


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    plugin = _Recorder()
    pm = plugin_manager()
    pm.register(plugin)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


@pytest.mark.parametrize(
    ("body", "status", "results"),
    [(TWO_PHASES.replace("CAPTURE", "True"), "completed", {"first": {"n": 1}, "second": 2}),
     (FAILING, "failed", {"ok": 1})],
    ids=["completed", "failed"],
)
def test_run_hooks_are_called_around_the_run(
    body: str,
    status: str,
    results: dict[str, Any],
    recorder: _Recorder,
    invoke: Callable[..., Result],
    write_target: Callable[..., Path],
) -> None:
    invoke("run", write_target(body), "-e", "inline")
    (start, (name, executor, seen)), (finish, (name2, final, got)) = recorder.calls
    assert (start, finish) == ("start", "finish")
    assert name == name2
    assert executor == "inline"
    assert seen[-1] == status  # the hook's listener saw the whole run
    assert (final, got) == (status, results)
    # phasewise_action saw every action, with the state it produced
    kinds = [kind for kind, _, _ in recorder.actions]
    assert kinds[0] == "@@PIPELINE_START" and kinds[-1] == "@@PIPELINE_COMPLETE"
    assert recorder.actions[-1][2] == status
    started = {name for kind, name, _ in recorder.actions if kind == "@@PHASE_START"}
    assert set(results) <= started


@pytest.mark.timeout(30)
def test_finish_hook_called_when_interrupted(
    recorder: _Recorder, invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    invoke("run", write_target(INTERRUPTED))
    assert [kind for kind, _ in recorder.calls] == ["start", "finish"]
    assert recorder.calls[1][1][1] == "cancelled"


# ── -j on a pipeline whose phases all run alone ─────────────────────────────

SERIAL = """
def f():
    return 1

pipeline = Pipeline("serial", Phase("a", f), Phase("b", f, depends_on=("a",)))
"""


def _warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "warning" in line]


def test_j_without_a_parallel_phase_warns_once(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(SERIAL), "-j", "4")
    assert result.exit_code == 0, result.output
    (warning,) = _warnings(result)
    assert warning.startswith("phasewise: warning: -j 4 has no effect")
    for needle in ("runs alone (parallel=False)", "Pipeline(..., parallel=True)",
                   "Phase(..., parallel=True)"):
        assert needle in warning
    assert result.stdout == ""


@pytest.mark.parametrize(("body", "args"), [(SERIAL, ()), (SERIAL, ("-j", "1")),
                                            (OVERLAP, ("-j", "2"))],
                         ids=["no-j", "j1", "parallel-phases"])
def test_no_warning_when_j_can_matter_or_is_not_given(
    body: str, args: tuple[str, ...], invoke: Callable[..., Result],
    write_target: Callable[..., Path],
) -> None:
    result = invoke("run", write_target(body), *args)
    assert result.exit_code == 0, result.output
    assert _warnings(result) == []


# ── the summary: execution order, attempts of phases that never started ────

UNSORTED = """
def f():
    return 1

pipeline = Pipeline("unsorted", Phase("zeta", f), Phase("beta", f, depends_on=("zeta",)),
                    Phase("alpha", f))
"""


def _list_rows(stdout: str) -> list[list[str]]:
    """The rows of ``phasewise list``'s first table (after its dashed rule)."""
    lines = stdout.splitlines()
    rule = min(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line))
    rows = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_summary_lists_phases_in_execution_order(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(UNSORTED)
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    assert "pipeline 'unsorted' completed" in result.stderr
    assert "; phases in execution order" in result.stderr
    ran = [name for _, name, _ in _summary(result.stderr)]
    listed = [row[1] for row in _list_rows(invoke("list", path).stdout)]
    assert ran == listed == ["alpha", "zeta", "beta"]


def test_phases_that_never_started_say_so(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", write_target(FAILING))
    assert result.exit_code == 1
    rows = {name: (tag, rest) for tag, name, rest in _summary(result.stderr)}
    assert rows["after"] == ("CANCELLED", "not started: phase 'broken' failed")
    assert rows["broken"][0] == "FAIL" and "attempts" not in rows["broken"][1]
    assert rows["ok"][0] == "OK" and re.fullmatch(r"\(\d+\.\d+s\)", rows["ok"][1])


# ── where the executor came from; errors before the run starts ─────────────


def test_unknown_executor_from_the_environment_names_the_variable(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = _two(write_target)
    from_env = invoke("run", path, env={"PHASEWISE_EXECUTOR": "bogus"})
    _usage_error(from_env, "unknown executor 'bogus'",
                 "(asked for by the PHASEWISE_EXECUTOR environment variable)")
    assert "--executor" not in from_env.stderr
    from_flag = invoke("run", path, "-e", "bogus", env={"PHASEWISE_EXECUTOR": "thread"})
    _usage_error(from_flag, "unknown executor 'bogus'", "(asked for by --executor)")
    assert "PHASEWISE_EXECUTOR" not in from_flag.stderr


def test_bad_executor_option_prints_only_the_error(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    """The opening line comes with @@PIPELINE_START: a run that cannot start has none.

    Needs the scheduler to create the run's executors before @@PIPELINE_START."""
    result = invoke("run", _two(write_target), "-O", "bogus_option=1")
    _usage_error(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: executor 'thread' cannot be created")


def test_the_opening_line_comes_when_the_run_starts(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    result = invoke("run", _two(write_target), "-j", "3")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[0] == "phasewise: running 'two' (2 phases) on 'thread', capturing output"
    assert lines[1].startswith("phasewise: warning: -j 3 has no effect")
    assert lines[2] == "[1/2] first..."


# ── -v/--verbose ────────────────────────────────────────────────────────────

DEBUG_ENV = """
import os

def env():
    return os.environ.get("PHASEWISE_DEBUG")

pipeline = Pipeline("debug", Phase("env", env))
"""


@pytest.fixture
def no_debug_env() -> Iterator[None]:
    """``-v`` sets PHASEWISE_DEBUG in this process; keep that within one test."""
    saved = os.environ.pop("PHASEWISE_DEBUG", None)
    try:
        yield
    finally:
        os.environ.pop("PHASEWISE_DEBUG", None)
        if saved is not None:
            os.environ["PHASEWISE_DEBUG"] = saved


@pytest.mark.usefixtures("no_debug_env")
def test_verbose_sets_phasewise_debug_for_the_phases(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(DEBUG_ENV)
    quiet = invoke("run", path, "--json")
    assert _json(quiet)["results"] == {"env": None}
    for flag in ("-v", "--verbose"):
        os.environ.pop("PHASEWISE_DEBUG", None)
        loud = invoke("run", path, "--json", flag)
        assert loud.exit_code == 0, loud.output
        assert _json(loud)["results"] == {"env": "1"}


@pytest.mark.usefixtures("no_debug_env")
def test_verbose_shows_the_traceback_of_an_infrastructure_error(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = _two(write_target)
    loud = invoke("run", path, "-v", "-O", "bogus_option=1")
    assert loud.exit_code == 2
    err = loud.stderr
    assert "Traceback (most recent call last)" in err
    assert "ExecutorOptionsError" in err
    assert err.rstrip().splitlines()[-1].startswith("Error: executor 'thread' cannot be created")
    quiet = invoke("run", path, "-O", "bogus_option=1")
    assert "Traceback" not in quiet.stderr


# ── an executor that cannot work at all ─────────────────────────────────────


class _BrokenExecutor:
    """Cannot run anything: every task fails with ExecutorError (a missing interpreter)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers

    def submit(self, task: Any, emit: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        future.set_exception(ExecutorError("broken", "its interpreter is gone", "python"))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass


class _BrokenPlugin:
    @phasewise.hookimpl
    def phasewise_executors(self) -> dict[str, object]:
        return {"broken": _BrokenExecutor}


@pytest.fixture
def broken_executor() -> Iterator[None]:
    pm, plugin = plugin_manager(), _BrokenPlugin()
    pm.register(plugin, name="broken-executor")
    executor_registry.cache_clear()
    try:
        yield
    finally:
        pm.unregister(plugin)
        executor_registry.cache_clear()


@pytest.mark.usefixtures("broken_executor", "no_debug_env")
def test_an_executor_that_cannot_work_is_one_error_line(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = _two(write_target)
    result = invoke("run", path, "-e", "broken")
    _usage_error(result)
    assert result.stderr.splitlines()[-1] == "Error: executor 'broken': its interpreter is gone"
    assert "pipeline 'two'" not in result.stderr  # no summary: the run did not finish
    loud = invoke("run", path, "-e", "broken", "-v")
    assert loud.exit_code == 2
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.splitlines()[-1] == "Error: executor 'broken': its interpreter is gone"


# ── seed 004's progress lines and summary for what phases can say ───────────

AUTHORED = """
class CollectError(Exception):
    pass

def collect():
    return [1, 2]

def thin(result):
    return ["only 2 items"] if len(result) < 3 else None

def strict(params):
    return params["strict"]

def lint(context):
    return "linted"

def upload(context):
    raise OSError("no network")

def tally(context):
    return len(context["collect"])

pipeline = Pipeline(
    "authored",
    Phase("collect", collect, label="Collecting", validate=thin, cache=True),
    Phase("lint", lint, depends_on="collect", when=strict),
    Phase("upload", upload, depends_on="collect", error=CollectError,
          policy=PhasePolicy(on_fail="skip")),
    Phase("tally", tally, depends_on=("collect", "lint", "upload")),
    params={"strict": False},
)
"""


def test_labels_conditions_warnings_error_types_and_the_cache_in_the_summary(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = write_target(AUTHORED)
    first = invoke("run", path, "-e", "inline")
    assert first.exit_code == 0, first.output  # a skipped non-critical phase: still 0
    lines = first.stderr.splitlines()
    assert "[1/4] Collecting..." in lines  # the label
    assert "collect ! warning: only 2 items" in lines  # shown live, even without capture
    assert "[SKIP] upload: CollectError: no network" in lines
    summary = _summary(first.stderr)
    assert [name for _, name, _ in summary] == ["collect", "lint", "upload", "tally"]
    rows = {name: (tag, rest) for tag, name, rest in summary}
    assert rows["lint"] == ("SKIP", "condition not met")
    assert rows["upload"][0] == "SKIP" and rows["upload"][1].endswith("CollectError: no network")
    collect_line = next(i for i, line in enumerate(lines) if line.startswith("  [OK]")
                        and " collect " in line)
    assert lines[collect_line + 1].strip() == "warning: only 2 items"  # under its phase
    second = invoke("run", path, "-e", "inline", "--param", "strict=true")
    rows = {name: tag for tag, name, _ in _summary(second.stderr)}
    assert rows == {"collect": "CACHED", "lint": "OK", "upload": "SKIP", "tally": "OK"}
    assert "[1/4] Collecting... cached" in second.stderr.splitlines()


@pytest.mark.parametrize("flag", [("-q",), ("--quiet",), ("--progress", "none")])
def test_quiet_shows_only_failures(
    flag: tuple[str, ...], invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    ok = invoke("run", _two(write_target, capture=True), *flag)
    assert ok.exit_code == 0, ok.output
    assert ok.stderr == ""
    failed = invoke("run", write_target(FAILING, name="failing.py"), *flag)
    assert failed.exit_code == 1
    err = failed.stderr
    assert "phasewise: running" not in err and "[1/3]" not in err
    assert [(tag, name) for tag, name, _ in _summary(err)] == [("FAIL", "broken")]
    assert "in broken_handler" in err  # the traceback stays
    assert "to carry this run on: phasewise run" in err


def test_progress_plain_is_the_default(
    invoke: Callable[..., Result], write_target: Callable[..., Path]
) -> None:
    path = _two(write_target)
    for args in ((), ("--progress", "plain"), ("--progress", "auto")):
        result = invoke("run", path, *args)
        assert result.exit_code == 0, result.output
        assert "[1/2] first..." in result.stderr.splitlines()
    bad = invoke("run", path, "--progress", "fancy")
    assert bad.exit_code == 2 and "fancy" in bad.stderr


def test_run_help_documents_the_authoring_options(invoke: Callable[..., Result]) -> None:
    flat = " ".join(invoke("run", "--help").stdout.split())
    for option in ("--param KEY=VALUE", "--params-file FILE", "--dry-run",
                   "--pause-after NAME", "--no-pause", "--progress", "-q, --quiet"):
        assert option in flat
    assert "q and Enter" in flat and "exit code 1" in flat
