"""SubprocessExecutor: one fresh interpreter per phase.

Options (``env=``, ``cwd=``, ``python=``), isolation between phases, lazy start,
shutdown, and pipelines defined in a script's ``__main__``. No process may be left after
a test: neither a descendant of this process nor an orphan carrying the test's marker.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from processes import MARK, descendants, wait_until_gone

from phasewise import Phase, PhasePolicy, Pipeline, Store
from phasewise.core import wire
from phasewise.core.errors import ExecutorError, PhaseError
from phasewise.core.task import Task
from phasewise.executors import SubprocessExecutor

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_process_left")]



# ── handlers ────────────────────────────────────────────────────────────────


def getpid() -> int:
    return os.getpid()


def getenv(name: str) -> str | None:
    return os.environ.get(name)


def getcwd() -> str:
    return os.getcwd()


def executable() -> str:
    return sys.executable


def set_global() -> int:
    global _COUNTER
    _COUNTER = _COUNTER + 1
    return _COUNTER


_COUNTER = 0


def base() -> int:
    return 21


def double(context: dict[str, Any]) -> int:
    return context["base"] * 2


def chatty() -> str:
    print("hello from the child")
    return "done"


def session_facts() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "sid": os.getsid(0),
        "sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "stdin": os.read(0, 10),
    }


def sleep_forever() -> None:
    time.sleep(60)


def no_processes_here() -> set[int]:
    return descendants(os.getpid())


def run(executor: SubprocessExecutor, handler: Callable[..., Any], phase: str = "p") -> Any:
    return executor.submit(Task(phase, handler), lambda e: None).result(timeout=20)


# ── options ─────────────────────────────────────────────────────────────────


def test_env_is_visible_to_the_handler() -> None:
    executor = SubprocessExecutor(env={"X": "1"})
    try:
        assert run(executor, functools.partial(getenv, "X")) == "1"
        # the rest of the environment is inherited
        assert run(executor, functools.partial(getenv, MARK)) == os.environ[MARK]
    finally:
        executor.shutdown()


def test_env_through_executor_options() -> None:
    pipeline = Pipeline("env", Phase("x", functools.partial(getenv, "X")))
    result = pipeline.run(executor="subprocess", executor_options={"env": {"X": "from-run"}})
    assert result.ok, result.state
    assert result.results == {"x": "from-run"}


def test_cwd(tmp_path: Path) -> None:
    executor = SubprocessExecutor(cwd=tmp_path)
    try:
        assert Path(run(executor, getcwd)).resolve() == tmp_path.resolve()
    finally:
        executor.shutdown()


def test_cwd_through_executor_options(tmp_path: Path) -> None:
    pipeline = Pipeline("cwd", Phase("where", getcwd))
    result = pipeline.run(executor="subprocess", executor_options={"cwd": str(tmp_path)})
    assert result.ok, result.state
    assert Path(result.results["where"]).resolve() == tmp_path.resolve()


def test_python_option() -> None:
    executor = SubprocessExecutor(python=sys.executable)
    try:
        assert os.path.realpath(run(executor, executable)) == os.path.realpath(sys.executable)
    finally:
        executor.shutdown()


def test_default_python_is_this_interpreter() -> None:
    executor = SubprocessExecutor()
    try:
        assert executor.python == sys.executable
    finally:
        executor.shutdown()


def test_every_phase_gets_a_fresh_interpreter() -> None:
    pipeline = Pipeline("fresh", Phase("a", set_global), Phase("b", set_global),
                        Phase("c", getpid), Phase("d", getpid))
    result = pipeline.run(executor="subprocess")
    assert result.ok, result.state
    assert result.results["a"] == result.results["b"] == 1  # no state shared between phases
    assert result.results["c"] != result.results["d"]
    assert os.getpid() not in (result.results["c"], result.results["d"])


def test_context_and_capture_through_a_run() -> None:
    pipeline = Pipeline("p", Phase("base", base), Phase("double", double, depends_on=["base"]),
                        Phase("chatty", chatty), capture_output=True)
    result = pipeline.run(executor="subprocess")
    assert result.ok, result.state
    assert result.results == {"base": 21, "double": 42, "chatty": "done"}
    (chat,) = [p for p in result.state.phases if p.name == "chatty"]
    assert [(log.line, log.stream) for log in chat.logs] == [("hello from the child", "stdout")]


def test_child_has_its_own_session_ignores_sigint_and_no_stdin() -> None:
    executor = SubprocessExecutor()
    try:
        facts = run(executor, session_facts)
    finally:
        executor.shutdown()
    assert facts["sid"] == facts["pid"]
    assert facts["sigint"] is True
    assert facts["stdin"] == b""


def test_log_events_are_emitted_before_the_future_resolves() -> None:
    executor = SubprocessExecutor()
    events: list[Any] = []
    try:
        future = executor.submit(Task("chatty", chatty, capture_output=True), events.append)
        assert future.result(timeout=20) == "done"
        seen = list(events)
    finally:
        executor.shutdown()
    assert [line for e in seen if isinstance(e, wire.Log) for line in e.lines] == [
        "hello from the child"
    ]


def test_cancelling_a_running_task_kills_the_child() -> None:
    executor = SubprocessExecutor(kill_grace=0.2)
    try:
        running = executor.submit(Task("sleeper", sleep_forever), lambda e: None)
        time.sleep(0.3)
        assert running.cancel() is True
        with pytest.raises(PhaseError) as info:
            running.result(timeout=15)
        assert "'sleeper'" in str(info.value)
        assert run(executor, getpid) != os.getpid()  # the executor goes on
    finally:
        executor.shutdown()


# ── lazy start and shutdown ─────────────────────────────────────────────────


def test_constructing_starts_no_process() -> None:
    before = descendants(os.getpid())
    executor = SubprocessExecutor()
    try:
        assert descendants(os.getpid()) == before
    finally:
        executor.shutdown()
    assert descendants(os.getpid()) == before


def test_a_pipeline_that_never_uses_subprocess_starts_none() -> None:
    pipeline = Pipeline("threads", Phase("look", no_processes_here, executor="thread"))
    result = pipeline.run(executor="subprocess")
    assert result.ok, result.state
    assert result.results["look"] == set()


def test_shutdown_leaves_no_process_and_is_idempotent() -> None:
    before = descendants(os.getpid())
    executor = SubprocessExecutor()
    assert run(executor, getpid) not in before
    executor.shutdown()
    executor.shutdown()
    assert not wait_until_gone(lambda: descendants(os.getpid()) - before)
    with pytest.raises(RuntimeError):
        executor.submit(Task("late", getpid), lambda e: None)


def test_shutdown_with_cancel_stops_running_children() -> None:
    executor = SubprocessExecutor(kill_grace=0.2)
    running = executor.submit(Task("sleeper", sleep_forever), lambda e: None)
    time.sleep(0.3)
    started = time.monotonic()
    executor.shutdown(cancel=True)
    assert time.monotonic() - started < 10
    assert running.done()
    with pytest.raises(PhaseError):
        running.result(timeout=0)


# ── __main__ ────────────────────────────────────────────────────────────────

_SCRIPT = """\
from phasewise import Phase, Pipeline

print("module-level line", flush=True)


def base():
    return 21


def double(context):
    return context["base"] * 2


pipeline = Pipeline("main-script", Phase("base", base),
                    Phase("double", double, depends_on=["base"]))
result = pipeline.run(executor="subprocess")
print("result", result.status, result.results.get("double"), flush=True)
"""


def test_pipeline_in_main_of_an_unguarded_script(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=25)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines.count("module-level line") == 1, done.stdout  # children did not re-run it
    assert lines.count("result completed 42") == 1, done.stdout + done.stderr


# ── an executor that cannot work ────────────────────────────────────────────


def _append(path: str) -> None:
    with open(path, "a") as f:
        f.write("attempt\n")


def test_a_missing_interpreter_stops_the_run_before_any_phase(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    pipeline = Pipeline("broken", Phase(
        "a", functools.partial(_append, str(attempts)),
        policy=PhasePolicy(on_fail="retry", max_retries=3, retry_delay=5)))
    store = Store(pipeline.build_reducer())
    with pytest.raises(ExecutorError) as caught:
        pipeline.run(executor="subprocess", executor_options={"python": "/nonexistent/python"},
                     store=store)
    assert caught.value.executor == "subprocess"
    assert caught.value.option == "python"
    assert "/nonexistent/python" in str(caught.value)
    assert store.state.phase("a").status == "pending"
    assert not attempts.exists()


def test_an_interpreter_that_cannot_start_fails_the_run_without_retries(tmp_path: Path) -> None:
    not_runnable = tmp_path / "python"
    not_runnable.write_text("#!/nonexistent/interpreter\n")
    not_runnable.chmod(0o755)
    pipeline = Pipeline(
        "broken",
        Phase("a", functools.partial(_append, str(tmp_path / "attempts")),
              policy=PhasePolicy(on_fail="retry", max_retries=3, retry_delay=5)),
        Phase("b", functools.partial(_append, str(tmp_path / "attempts")), depends_on="a"),
    )
    store = Store(pipeline.build_reducer())
    started = time.monotonic()
    with pytest.raises(ExecutorError, match="cannot start"):
        pipeline.run(executor="subprocess", executor_options={"python": str(not_runnable)},
                     store=store)
    assert time.monotonic() - started < 5, "the retry policy's delays were spent"
    assert store.state.phase("a").status == "failed"
    assert store.state.phase("a").attempt == 1
    assert store.state.phase("b").status == "cancelled"
    assert store.state.status == "failed"
