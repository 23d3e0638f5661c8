"""ProcessExecutor: a persistent pool of worker processes, used directly and through runs.

Options (start methods), lazy start, shutdown, the worker's process group and signals,
and pipelines defined in a script's ``__main__``. No process may be left after a test:
neither a descendant of this process nor an orphan carrying the test's marker.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from processes import descendants, wait_until_gone

from phasewise import Phase, Pipeline
from phasewise.core import wire
from phasewise.core.errors import PhaseError
from phasewise.core.task import Task
from phasewise.executors import ProcessExecutor
from phasewise.executors import process as process_module

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_process_left")]



# ── handlers ────────────────────────────────────────────────────────────────


def getpid() -> int:
    return os.getpid()


def slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def base() -> int:
    return 21


def double(context: dict[str, Any]) -> int:
    return context["base"] * 2


def chatty() -> str:
    print("hello from the worker")
    return "done"


def worker_facts() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    }


def no_processes_here() -> set[int]:
    return descendants(os.getpid())


def meet(mine: str, other: str) -> int:
    """Announce this task and wait for the other one: this worker's pid, once both run."""
    Path(mine).touch()
    return wait_for(other)


def sleep_forever() -> None:
    time.sleep(60)


def wait_for(path: str, then: str = "return") -> int:
    """Block until ``path`` exists, then return this worker's pid or kill the worker."""
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    if then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


# ── options ─────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_start_methods_run_a_pipeline(start_method: str) -> None:
    pipeline = Pipeline("p", Phase("base", base), Phase("double", double, depends_on=["base"]),
                        Phase("chatty", chatty), capture_output=True)
    result = pipeline.run(executor="process", executor_options={"start_method": start_method})
    assert result.ok, result.state
    assert result.results == {"base": 21, "double": 42, "chatty": "done"}
    (chat,) = [p for p in result.state.phases if p.name == "chatty"]
    assert [log.line for log in chat.logs] == ["hello from the worker"]


def test_default_start_method_is_auto() -> None:
    pool = ProcessExecutor(max_workers=1)
    try:
        assert pool.start_method == "auto"
    finally:
        pool.shutdown()


def test_unknown_start_method_is_a_value_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, forkserver, spawn, fork"):
        ProcessExecutor(start_method="vfork")


_AUTO_SCRIPT = """
import os, signal, threading
from pathlib import Path
from phasewise import Phase, PhasePolicy, Pipeline

def parent():
    return os.getppid()

def dies_once():
    marker = Path("died")
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getppid()

def children():
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    out.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return out

alone = Pipeline("alone", Phase("a", parent)).run(executor="process", max_workers=2)
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()
threaded = Pipeline("threaded", Phase("a", parent)).run(executor="process", max_workers=2)
stop.set()
other.join()
replaced = Pipeline("replaced", Phase("d", dies_once, policy=PhasePolicy(
    on_fail="retry", max_retries=1, retry_delay=0))).run(
    executor="process", max_workers=1)
print(os.getpid(), alone.results["a"], threaded.results["a"], replaced.results["d"],
      len(children()))
"""


def test_auto_forks_a_single_threaded_parent_and_uses_the_forkserver_otherwise(
    tmp_path: Path,
) -> None:
    # A fresh interpreter: this test process may have threads of its own.
    done = subprocess.run([sys.executable, "-c", _AUTO_SCRIPT], cwd=tmp_path,
                          capture_output=True, text=True, timeout=25)
    assert done.returncode == 0, done.stderr
    me, alone, threaded, replaced, left = map(int, done.stdout.split())
    assert alone == me  # forked: the worker's parent is the process itself
    assert threaded != me  # another thread was running: forked by the forkserver
    assert replaced != me  # a replacement worker starts later: from the forkserver too
    assert left == 0  # no worker, forkserver or resource tracker outlives a run


def test_max_workers_bounds_the_pool() -> None:
    pool = ProcessExecutor(max_workers=2)
    try:
        futures = [pool.submit(Task(f"t{i}", functools.partial(slow_pid, 0.05)), lambda e: None)
                   for i in range(6)]
        pids = {f.result(timeout=15) for f in futures}
    finally:
        pool.shutdown()
    assert 1 <= len(pids) <= 2
    assert os.getpid() not in pids


def test_workers_are_persistent() -> None:
    pool = ProcessExecutor(max_workers=1)
    try:
        pids = [pool.submit(Task(f"t{i}", getpid), lambda e: None).result(timeout=15)
                for i in range(3)]
    finally:
        pool.shutdown()
    assert len(set(pids)) == 1


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProcessExecutor(max_workers=0)


def test_worker_has_its_own_process_group_and_ignores_sigint() -> None:
    pool = ProcessExecutor(max_workers=1)
    try:
        facts = pool.submit(Task("facts", worker_facts), lambda e: None).result(timeout=15)
    finally:
        pool.shutdown()
    assert facts["pgid"] == facts["pid"]
    assert facts["sigint"] is True


def test_log_events_are_emitted_before_the_future_resolves() -> None:
    pool = ProcessExecutor(max_workers=1)
    events: list[Any] = []
    try:
        future = pool.submit(Task("chatty", chatty, capture_output=True), events.append)
        assert future.result(timeout=15) == "done"
        seen = list(events)  # what had been emitted when the result was available
    finally:
        pool.shutdown()
    assert [line for e in seen if isinstance(e, wire.Log) for line in e.lines] == [
        "hello from the worker"
    ]


def test_cancelling_a_running_task_kills_its_worker_and_the_pool_goes_on() -> None:
    pool = ProcessExecutor(max_workers=1, kill_grace=0.2)
    try:
        first = pool.submit(Task("first", getpid), lambda e: None).result(timeout=15)
        running = pool.submit(Task("sleeper", sleep_forever), lambda e: None)
        time.sleep(0.2)
        assert running.cancel() is True
        with pytest.raises(PhaseError) as info:
            running.result(timeout=15)
        assert "'sleeper'" in str(info.value)
        after = pool.submit(Task("after", getpid), lambda e: None).result(timeout=15)
    finally:
        pool.shutdown()
    assert after != first


def test_pending_tasks_run_after_a_busy_worker_frees_up() -> None:
    pool = ProcessExecutor(max_workers=1)
    try:
        futures = [pool.submit(Task(f"t{i}", functools.partial(slow_pid, 0.01)),
                               lambda e: None) for i in range(5)]
        assert len({f.result(timeout=15) for f in futures}) == 1
    finally:
        pool.shutdown()


# ── quick tasks queued in a worker's pipe ───────────────────────────────────


@pytest.fixture
def every_task_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks count as quick however long a loaded machine makes them take."""
    monkeypatch.setattr(process_module, "_QUICK", 60.0)


def _queued_behind_a_blocker(pool: ProcessExecutor, gate: Path, then: str) -> tuple[Any, Any]:
    """Run ``blocker`` (waits for ``gate``) with ``queued`` sent behind it, in the same
    worker's pipe; returns their futures once ``queued`` is there."""
    pool.submit(Task("warm", getpid), lambda e: None).result(timeout=15)  # a quick task
    pool.submit(Task("quick", getpid), lambda e: None)  # its result sends the next two
    blocker = pool.submit(Task("blocker", functools.partial(wait_for, str(gate), then)),
                          lambda e: None)
    queued = pool.submit(Task("queued", getpid), lambda e: None)
    deadline = time.monotonic() + 10
    while [len(w.tasks) for w in pool._workers] != [2] and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [len(w.tasks) for w in pool._workers] == [2]  # blocker runs, queued waits
    return blocker, queued


@pytest.mark.usefixtures("every_task_quick")
def test_a_task_waiting_in_a_dead_workers_pipe_runs_on_another_worker(tmp_path: Path) -> None:
    pool = ProcessExecutor(max_workers=1)
    try:
        blocker, queued = _queued_behind_a_blocker(pool, tmp_path / "go", then="die")
        (tmp_path / "go").touch()
        with pytest.raises(PhaseError, match="SIGKILL"):
            blocker.result(timeout=15)
        assert queued.result(timeout=15) != os.getpid()  # it ran, on the replacement
    finally:
        pool.shutdown()


@pytest.mark.usefixtures("every_task_quick")
def test_cancelling_a_task_waiting_in_a_workers_pipe(tmp_path: Path) -> None:
    pool = ProcessExecutor(max_workers=1, kill_grace=0.2)
    try:
        blocker, queued = _queued_behind_a_blocker(pool, tmp_path / "go", then="return")
        assert queued.cancel() is True
        assert queued.cancelled()
        (tmp_path / "go").touch()
        first = blocker.result(timeout=15)
        # the worker went on to the cancelled task, so it was stopped and replaced
        after = pool.submit(Task("after", getpid), lambda e: None).result(timeout=15)
    finally:
        pool.shutdown()
    assert after != first


def test_quick_tasks_are_not_queued_behind_a_task_that_runs_long(tmp_path: Path) -> None:
    pool = ProcessExecutor(max_workers=2)
    try:
        for _ in range(3):  # both workers have run quick tasks
            [f.result(timeout=15) for f in
             [pool.submit(Task(f"w{i}", getpid), lambda e: None) for i in range(4)]]
        blocker = pool.submit(Task("blocker", functools.partial(wait_for, str(tmp_path / "go"))),
                              lambda e: None)
        time.sleep(0.1)  # it has now run longer than a quick task
        quick = [pool.submit(Task(f"q{i}", getpid), lambda e: None) for i in range(20)]
        # all of them run on the other worker while the blocker still blocks
        assert len({f.result(timeout=15) for f in quick}) == 1
        (tmp_path / "go").touch()
        blocker.result(timeout=15)
    finally:
        pool.shutdown()


# ── lazy start and shutdown ─────────────────────────────────────────────────


def test_constructing_a_pool_starts_no_process() -> None:
    before = descendants(os.getpid())
    pool = ProcessExecutor(max_workers=2)
    try:
        assert descendants(os.getpid()) == before
    finally:
        pool.shutdown()
    assert descendants(os.getpid()) == before


def test_a_pipeline_that_never_uses_process_starts_none() -> None:
    pipeline = Pipeline("threads", Phase("look", no_processes_here))
    result = pipeline.run(executor="thread")
    assert result.ok, result.state
    assert result.results["look"] == set()


def test_process_run_whose_phases_all_override_to_thread_starts_none() -> None:
    pipeline = Pipeline("threads", Phase("look", no_processes_here, executor="thread"))
    result = pipeline.run(executor="process")
    assert result.ok, result.state
    assert result.results["look"] == set()


def test_shutdown_leaves_no_process_and_is_idempotent() -> None:
    before = descendants(os.getpid())
    pool = ProcessExecutor(max_workers=2)
    futures = [pool.submit(Task(f"t{i}", getpid), lambda e: None) for i in range(4)]
    workers = {f.result(timeout=15) for f in futures}
    assert workers and not workers & before
    pool.shutdown()
    pool.shutdown()
    assert not wait_until_gone(lambda: descendants(os.getpid()) - before)
    with pytest.raises(RuntimeError):
        pool.submit(Task("late", getpid), lambda e: None)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_idle_workers_exit_on_shutdown_without_being_killed(start_method: str,
                                                          tmp_path: Path) -> None:
    pool = ProcessExecutor(max_workers=2, start_method=start_method)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    futures = [pool.submit(Task(name, functools.partial(meet, mine, other)), lambda e: None)
               for name, mine, other in (("t0", first, second), ("t1", second, first))]
    assert len({f.result(timeout=15) for f in futures}) == 2  # both workers ran at once
    started = time.monotonic()
    pool.shutdown()
    # an idle worker exits when its task pipe closes; the fallback (SIGKILL after
    # kill_grace + 5 s) must not be needed — with "fork", a worker that inherited
    # another's task pipe would never see that EOF
    assert time.monotonic() - started < 4


def test_shutdown_with_cancel_stops_running_tasks() -> None:
    pool = ProcessExecutor(max_workers=1, kill_grace=0.2)
    running = pool.submit(Task("sleeper", sleep_forever), lambda e: None)
    waiting = pool.submit(Task("waiting", getpid), lambda e: None)
    time.sleep(0.2)
    started = time.monotonic()
    pool.shutdown(cancel=True)
    assert time.monotonic() - started < 10
    assert running.done()
    assert waiting.cancelled()
    with pytest.raises(PhaseError):
        running.result(timeout=0)


def test_two_pools_at_once_then_both_shut_down() -> None:
    first, second = ProcessExecutor(max_workers=1), ProcessExecutor(max_workers=1)
    try:
        a = first.submit(Task("a", getpid), lambda e: None).result(timeout=15)
        first.shutdown()
        # the forkserver is shared: the first pool's shutdown must not break the second
        b = second.submit(Task("b", getpid), lambda e: None).result(timeout=15)
    finally:
        first.shutdown()
        second.shutdown()
    assert a != b


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
result = pipeline.run(executor="process", executor_options={options!r})
print("result", result.status, result.results.get("double"), flush=True)
"""


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_pipeline_in_main_of_an_unguarded_script(start_method: str, tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(_SCRIPT).format(options={"start_method": start_method}))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=25)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines.count("module-level line") == 1, done.stdout  # workers did not re-run it
    assert lines.count("result completed 42") == 1, done.stdout + done.stderr
