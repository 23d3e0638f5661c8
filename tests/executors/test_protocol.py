"""The public executor API a plugin is written with: the protocol's attributes,
BaseExecutor, CancellableFuture, run_payload and reply_value."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from functools import partial
from typing import Any

import cloudpickle
import pytest

import phasewise.executors as executors
from phasewise.core import framing, wire
from phasewise.core.errors import RemotePhaseError, SerializationError, WireError
from phasewise.executors import (
    BaseExecutor,
    CancellableFuture,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    SubprocessExecutor,
    Task,
    ThreadExecutor,
    reply_value,
    run_payload,
)
from phasewise.executors import worker as worker_module
from phasewise.testing import handlers

pytestmark = pytest.mark.timeout(30)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # for the child interpreter


def fd_and_print() -> str:
    print("printed", flush=True)
    os.write(1, b"written to fd 1\n")
    os.write(2, b"written to fd 2\n")
    return "done"


# ── the protocol's attributes ───────────────────────────────────────────────


@pytest.mark.parametrize(("cls", "crosses", "reports"), [
    (InlineExecutor, False, False), (ThreadExecutor, False, True),
    (ProcessExecutor, True, True), (SubprocessExecutor, True, False),
])
def test_the_built_ins_declare_what_the_run_relies_on(cls: type, crosses: bool,
                                                      reports: bool) -> None:
    executor = cls(max_workers=3)
    try:
        assert isinstance(executor, Executor)
        assert isinstance(executor, BaseExecutor)
        assert executor.crosses_processes is crosses
        assert executor.reports_start is reports
        # queueing pools take five tasks per worker; the others as many as max_workers
        assert executor.max_in_flight == (15 if reports else None)
    finally:
        executor.shutdown()


def test_the_public_names_are_exported_lazily() -> None:
    code = ("import sys, phasewise, phasewise.executors as e; "
            "loaded = sorted(m for m in sys.modules if m.startswith('multiprocess')); "
            "assert not loaded, loaded; "
            "[getattr(e, name) for name in e.__all__ if name != 'ProcessExecutor']; "
            "assert 'multiprocess' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert executors.__all__ == sorted(executors.__all__)
    assert executors.Task is Task and executors.Log is wire.Log
    assert executors.Started is wire.Started
    assert executors.RemotePhaseError is RemotePhaseError


# ── BaseExecutor ────────────────────────────────────────────────────────────


class Recorder(BaseExecutor):
    def __init__(self) -> None:
        self.closes: list[bool] = []

    def start(self, task: Task, emit: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(task.run())
        return future

    def close(self, cancel: bool) -> None:
        self.closes.append(cancel)


def test_base_executor_defaults() -> None:
    assert (BaseExecutor.crosses_processes, BaseExecutor.reports_start,
            BaseExecutor.max_in_flight) == (False, False, None)
    assert isinstance(Recorder(), Executor)


def test_submit_calls_start_until_shutdown_then_refuses() -> None:
    executor = Recorder()
    assert executor.submit(Task("a", partial(handlers.const, 7)), print).result() == 7
    executor.shutdown()
    assert executor.closed
    with pytest.raises(RuntimeError, match="cannot submit to Recorder after shutdown"):
        executor.submit(Task("a", partial(handlers.const, 7)), print)


def test_shutdown_closes_once_and_again_only_to_cancel() -> None:
    executor = Recorder()
    executor.shutdown()
    executor.shutdown()
    assert executor.closes == [False]
    executor.shutdown(cancel=True)
    executor.shutdown(cancel=True)
    executor.shutdown()
    assert executor.closes == [False, True]


def test_the_context_manager_shuts_down_cancelling_if_the_block_raised() -> None:
    with Recorder() as executor:
        pass
    assert executor.closes == [False]
    with pytest.raises(KeyError), Recorder() as failing:
        raise KeyError("boom")
    assert failing.closes == [True]


def test_start_must_be_written() -> None:
    with pytest.raises(NotImplementedError, match="start"):
        BaseExecutor().submit(Task("a", handlers.where), print)


# ── CancellableFuture ───────────────────────────────────────────────────────


def test_cancelling_a_pending_future_does_not_kill() -> None:
    killed: list[Any] = []
    future = CancellableFuture(killed.append, "a")
    assert future.cancel()
    assert future.cancelled() and killed == []
    assert not future.set_running_or_notify_cancel()


def test_cancelling_a_running_future_kills_once() -> None:
    killed: list[Any] = []
    future = CancellableFuture(killed.append, "a")
    future.set_running_or_notify_cancel()
    assert future.cancel() and future.cancel()
    assert killed == [future] and future.kill_requested
    assert not future.cancelled()  # it resolves once the task is gone
    future.set_exception(RuntimeError("killed"))
    assert not future.cancel()
    assert killed == [future]


# ── run_payload and reply_value ─────────────────────────────────────────────


def test_run_payload_runs_a_task_payload_and_reply_value_gives_its_value() -> None:
    task = Task("ctx", handlers.echo_context, {"a": 1})
    reply = run_payload(task.payload, print)
    assert isinstance(reply, wire.Result)
    assert reply_value(reply, "ctx", "test") == {"a": 1}
    as_bytes = b"".join(framing.encode_parts(reply))
    assert reply_value(as_bytes, "ctx", "test") == {"a": 1}


def test_a_large_result_comes_back_through_bytes_intact_and_writable() -> None:
    reply = run_payload(Task("cols", partial(handlers.make_columns, 1 << 20, 10)).payload, print)
    value = reply_value(b"".join(framing.encode_parts(reply)), "cols", "test")
    assert [bytes(c) for c in value.columns] == [
        bytes(c) for c in handlers.make_columns(1 << 20, 10).columns]
    assert not memoryview(value.columns[0]).readonly


def test_a_handler_that_raises_becomes_a_remote_phase_error_with_its_traceback() -> None:
    reply = run_payload(Task("broken", handlers.raises_from_a_helper).payload, print)
    assert isinstance(reply, wire.Error) and reply.type == "LookupError"
    with pytest.raises(RemotePhaseError) as info:
        reply_value(reply, "broken", "test")
    error = info.value
    assert error.phase == "broken" and error.type_name == "LookupError"
    assert str(error) == "LookupError: deep in the user's code"
    assert "in _helper_that_raises" in error.remote_traceback
    assert "run_payload" not in error.remote_traceback  # from the handler's frame down


def test_a_result_that_does_not_pickle_is_a_serialization_error() -> None:
    reply = run_payload(Task("lock", threading.Lock).payload, print)
    assert isinstance(reply, wire.Error)
    with pytest.raises(SerializationError, match="the result of phase 'lock'"):
        reply_value(reply, "lock", "test")


def test_a_payload_without_a_run_is_refused() -> None:
    with pytest.raises(ValueError, match="not a task payload"):
        run_payload(wire.encode(wire.Started(0.0)), print)
    with pytest.raises(WireError):
        reply_value(wire.encode(wire.Started(0.0)), "a", "test")


def test_serve_runs_its_tasks_through_run_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = worker_module.run_payload

    def spy(payload: Any, emit: Any) -> Any:
        seen.append(payload.phase)
        return real(payload, emit)

    monkeypatch.setattr(worker_module, "run_payload", spy)
    task_r, task_w = os.pipe()
    result_r, result_w = os.pipe()
    thread = threading.Thread(target=worker_module.serve, args=(task_r, result_w))
    thread.start()
    os.write(task_w, Task("one", partial(handlers.const, 1)).payload)
    os.close(task_w)
    thread.join(10)
    os.close(task_r)
    os.close(result_w)
    with os.fdopen(result_r, "rb") as replies:
        messages = framing.MessageReader().feed(replies.read())
    assert seen == ["one"]
    (message,) = messages
    assert isinstance(message, wire.Result)
    assert reply_value(message, "one", "test") == 1


CAPTURING_CHILD = """
import sys, cloudpickle
from phasewise.core import framing, wire
from phasewise.executors import run_payload

events = []
reply = run_payload(sys.stdin.buffer.read(), events.append)
sys.stdout = sys.__stdout__
out = sys.stdout.buffer
out.write(cloudpickle.dumps((events, b"".join(framing.encode_parts(reply)))))
"""


def test_run_payload_captures_at_the_fd_level_and_emits_lines_before_returning() -> None:
    task = Task("talk", fd_and_print, capture_output=True)
    done = subprocess.run([sys.executable, "-c", CAPTURING_CHILD], input=task.payload,
                          capture_output=True, timeout=30, check=True)
    events, reply = cloudpickle.loads(done.stdout)
    def lines(stream: str) -> list[str]:
        return [line for e in events if e.stream == stream for line in e.lines]

    assert lines("stdout") == ["printed", "written to fd 1"]
    assert lines("stderr") == ["written to fd 2"]
    assert all(isinstance(e, wire.Log) for e in events)
    assert reply_value(reply, "talk", "test") == "done"
