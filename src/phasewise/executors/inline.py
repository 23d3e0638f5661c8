"""InlineExecutor: runs each task inside ``submit``, in the caller's thread.

Deterministic and easy to debug (a breakpoint in a handler just works), and the test
double for everything that consumes executors. A task cannot be interrupted, so a
phase that ran past its timeout is failed afterwards and its result discarded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from phasewise.core.errors import PhaseTimeout
from phasewise.core.task import Task
from phasewise.executors.base import BaseExecutor
from phasewise.executors.capture import capture_thread_output

__all__ = ["InlineExecutor", "run_task_here"]


def run_task_here(task: Task, emit: Callable[[Any], None]) -> Any:
    """Run ``task`` in this thread, capturing its output if it asks for that."""
    if not task.capture_output:
        return task.run()
    with capture_thread_output(emit):
        return task.run()


class InlineExecutor(BaseExecutor):
    """Runs each phase in the caller's thread, one at a time."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        started = time.monotonic()
        try:
            result = run_task_here(task, emit)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
            return future
        took = time.monotonic() - started
        if task.timeout is not None and took > task.timeout:
            future.set_exception(PhaseTimeout(
                f"phase {task.phase!r} timed out after {task.timeout:g} s "
                f"(ran {took:.3g} s; the inline executor cannot interrupt it)", task.phase))
        else:
            future.set_result(result)
        return future
