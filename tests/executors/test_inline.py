"""InlineExecutor: runs each task inside submit(), in the caller's thread."""

from __future__ import annotations

import threading
import time

import pytest

from phasewise.core.errors import PhaseTimeout
from phasewise.core.task import Task
from phasewise.core.wire import Log
from phasewise.executors import InlineExecutor


def test_the_task_runs_in_the_caller_thread_before_submit_returns() -> None:
    ran: list[int] = []

    def handler():
        ran.append(threading.get_ident())
        return "done"

    future = InlineExecutor().submit(Task("t", handler), lambda event: None)
    assert ran == [threading.get_ident()]
    assert future.done()
    assert future.result() == "done"


def test_context_is_passed_only_when_given() -> None:
    executor = InlineExecutor()
    assert executor.submit(Task("t", lambda: 1), print).result() == 1
    got = executor.submit(Task("t", lambda context: context, {"a": 1}), print).result()
    assert got == {"a": 1}


def test_an_error_becomes_the_future_exception() -> None:
    error = KeyError("k")

    def handler():
        raise error

    future = InlineExecutor().submit(Task("t", handler), lambda event: None)
    assert future.done()  # resolved inside submit, nothing raised from it
    assert future.exception() is error


def test_keyboard_interrupt_propagates() -> None:
    def handler():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        InlineExecutor().submit(Task("t", handler), lambda event: None)


def test_captured_output_is_emitted_as_log_events() -> None:
    events: list[Log] = []

    def handler():
        print("a")
        print("b")

    InlineExecutor().submit(Task("t", handler, capture_output=True), events.append).result()
    assert [line for e in events for line in e.lines] == ["a", "b"]
    assert {e.stream for e in events} == {"stdout"}


def test_without_capture_nothing_is_emitted(capsys) -> None:
    events: list[Log] = []
    InlineExecutor().submit(Task("t", lambda: print("loud")), events.append).result()
    assert events == []
    assert "loud" in capsys.readouterr().out


def test_a_task_past_its_timeout_fails_afterwards() -> None:
    def handler():
        time.sleep(0.05)
        return "late"

    future = InlineExecutor().submit(Task("slow", handler, timeout=0.01), print)
    error = future.exception()
    assert isinstance(error, PhaseTimeout)
    assert error.phase == "slow"
    assert "timed out after" in str(error)


def test_shutdown_is_idempotent_and_refuses_later_tasks() -> None:
    executor = InlineExecutor(max_workers=3)
    assert executor.submit(Task("before", lambda: 1), print).result() == 1
    executor.shutdown()
    executor.shutdown(cancel=True)
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(Task("late", lambda: ran.append("late")), print)
    assert ran == []
