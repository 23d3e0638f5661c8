"""Task: one attempt of a phase, runnable here or, through its payload, elsewhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cloudpickle

from phasewise import Phase, Pipeline
from phasewise.core.task import Remote, Task, call_handler
from phasewise.executors import InlineExecutor

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a user's script is sent


def add_one(context: dict[str, Any]) -> int:
    return context["base"] + 1


def fails() -> None:
    raise ValueError("raised in the payload's handler")


def test_run_calls_the_handler_with_its_context() -> None:
    assert Task("p", add_one, {"base": 41}).run() == 42


def test_a_task_carries_its_phase_resources() -> None:
    assert Task("p", add_one).resources is None
    assert Task("p", add_one, resources={"GPU": 1}).resources == {"GPU": 1}


def test_run_payload_runs_the_task_from_its_bytes() -> None:
    task = Task("p", add_one, {"base": 1})
    assert isinstance(task.payload, bytes)
    assert Task.run_payload(task.payload) == 2


def test_a_payload_run_in_another_process_points_its_traceback_at_the_source() -> None:
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from phasewise.core.task import Task; "
         "Task.run_payload(sys.stdin.buffer.read())"],
        input=Task("p", fails).payload, capture_output=True, timeout=30,
    )
    assert done.returncode == 1
    err = done.stderr.decode()
    # pickled by value (the module is not importable there), still naming this file
    assert f'File "{__file__}"' in err, err
    assert 'raise ValueError("raised in the payload\'s handler")' in err, err


# ── Remote: a result an executor keeps where it was made ───────────────────


def test_a_remote_is_fetched_once_and_pickles_as_its_value() -> None:
    import pickle

    calls: list[int] = []
    remote = Remote("p", object(), lambda: calls.append(1) or b"value", nbytes=5)
    assert "phase 'p'" in repr(remote) and "5 bytes" in repr(remote)
    assert pickle.loads(pickle.dumps(remote)) == b"value"
    assert remote.fetch() == b"value"
    assert calls == [1]


class KeepingExecutor(InlineExecutor):
    """Keeps every result "elsewhere" (a Remote) and records the contexts it is given."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self.contexts: dict[str, dict[str, Any]] = {}
        self.fetched: list[str] = []

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        self.contexts[task.phase] = dict(task.context or {})
        arguments = task.arguments
        if task.context is not None:  # the handler gets the values, as on a cluster
            arguments["context"] = {k: v.fetch() if isinstance(v, Remote) else v
                                    for k, v in task.context.items()}
        value = call_handler(task.handler, arguments)
        future: Future[Any] = Future()

        def fetch(phase: str = task.phase) -> Any:
            self.fetched.append(phase)
            return value

        future.set_result(Remote(task.phase, self, fetch))
        return future


def test_a_run_passes_a_kept_result_on_to_its_executor_and_fetches_it_for_the_rest() -> None:
    made: list[KeepingExecutor] = []

    def lookup(name: str) -> Any:
        if name == "keeping":
            return lambda **kw: made.append(KeepingExecutor(**kw)) or made[-1]
        return InlineExecutor

    pipeline = Pipeline(
        "remote",
        Phase("make", lambda: b"x" * 10),
        Phase("use", lambda context: len(context["make"]), depends_on="make"),
        Phase("here", lambda context: context["make"][:2], depends_on="make",
              executor="inline"),
        Phase("checked", lambda: 1, validate=lambda result: [f"got {result!r}"]),
        Phase("gated", lambda context: context["make"][:1], depends_on="make",
              when=lambda context: context["make"] == b"x" * 10))  # a condition: the value
    result = pipeline.run(executor="keeping", executors=lookup)
    assert result.ok, [p.error for p in result.state.phases]
    keeper = made[0]
    assert isinstance(keeper.contexts["use"]["make"], Remote)  # passed on, not fetched
    assert "here" not in keeper.contexts  # it ran inline, with the value
    assert result.results == {"make": b"x" * 10, "use": 10, "here": b"xx", "checked": 1,
                              "gated": b"x"}
    assert keeper.contexts["gated"]["make"] == b"x" * 10  # fetched for its condition
    assert "warning: got 1" in [log.line for log in result.state.phase("checked").logs]
    assert sorted(keeper.fetched) == ["checked", "gated", "make", "use"]  # each once
