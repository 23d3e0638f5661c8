"""ThreadExecutor: a pool of daemon threads, started on demand."""

from __future__ import annotations

import threading

import pytest

from phasewise.core.task import Task
from phasewise.executors import ThreadExecutor

pytestmark = pytest.mark.timeout(30)


def test_bad_max_workers() -> None:
    with pytest.raises(ValueError):
        ThreadExecutor(max_workers=0)


def test_no_thread_starts_before_the_first_submit() -> None:
    before = threading.active_count()
    executor = ThreadExecutor(max_workers=4)
    assert threading.active_count() == before
    executor.shutdown()


def test_tasks_run_on_other_threads_and_resolve_their_futures() -> None:
    executor = ThreadExecutor(max_workers=2)
    try:
        futures = [executor.submit(Task(f"t{i}", threading.get_ident), print) for i in range(5)]
        idents = {f.result(timeout=10) for f in futures}
    finally:
        executor.shutdown()
    assert threading.get_ident() not in idents
    assert 1 <= len(idents) <= 2


def test_worker_threads_are_daemons_and_leave_on_shutdown() -> None:
    executor = ThreadExecutor(max_workers=2, thread_name_prefix="pw-test")
    executor.submit(Task("t", lambda: None), print).result(timeout=10)
    mine = [t for t in threading.enumerate() if t.name.startswith("pw-test")]
    assert mine and all(t.daemon for t in mine)
    executor.shutdown()
    assert not any(t.is_alive() for t in mine)


def test_max_workers_threads_run_at_once() -> None:
    executor = ThreadExecutor(max_workers=3)
    barrier = threading.Barrier(3, timeout=10)
    try:
        futures = [executor.submit(Task(f"t{i}", barrier.wait), print) for i in range(3)]
        assert sorted(f.result(timeout=10) for f in futures) == [0, 1, 2]
    finally:
        executor.shutdown()


def test_errors_become_the_future_exception() -> None:
    raised = RuntimeError("bad")

    def handler():
        raise raised

    executor = ThreadExecutor(max_workers=1)
    try:
        error = executor.submit(Task("t", handler), print).exception(timeout=10)
        after = executor.submit(Task("after", lambda: "still works"), print).result(10)
    finally:
        executor.shutdown()
    assert error is raised
    assert after == "still works"  # the thread that ran it goes on


def test_shutdown_cancel_cancels_queued_tasks() -> None:
    executor = ThreadExecutor(max_workers=1)
    release = threading.Event()
    started = threading.Event()

    def block():
        started.set()
        release.wait(10)

    running = executor.submit(Task("running", block), print)
    assert started.wait(10)
    queued = executor.submit(Task("queued", lambda: "never"), print)
    executor.shutdown(cancel=True)
    release.set()
    assert queued.cancelled()
    assert running.result(timeout=10) is None


def test_submit_after_shutdown_is_an_error() -> None:
    executor = ThreadExecutor()
    executor.shutdown()
    executor.shutdown()  # idempotent
    with pytest.raises(RuntimeError):
        executor.submit(Task("t", lambda: None), print)


def test_each_thread_captures_only_its_own_task() -> None:
    executor = ThreadExecutor(max_workers=2)
    barrier = threading.Barrier(2, timeout=10)
    got: dict[str, list[str]] = {"a": [], "b": []}

    def talk(tag):
        barrier.wait()
        for i in range(100):
            print(f"{tag}{i}")

    try:
        futures = [
            executor.submit(
                Task(tag, lambda tag=tag: talk(tag), capture_output=True),
                lambda event, tag=tag: got[tag].extend(getattr(event, "lines", ())),
            )
            for tag in got
        ]
        for f in futures:
            f.result(timeout=10)
    finally:
        executor.shutdown()
    for tag, lines in got.items():
        assert lines == [f"{tag}{i}" for i in range(100)]
