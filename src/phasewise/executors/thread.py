"""ThreadExecutor: a pool of daemon threads in this process.

Right for phases that wait on I/O, or that release the GIL. A thread cannot be killed:
a phase past its timeout is marked failed and its result discarded, but its thread
runs on until the handler returns (daemon threads, so it never holds up interpreter
exit). Use the process executor for phases that must be stopped.

    submit ──▶ SimpleQueue ──▶ worker threads (started on demand, up to max_workers)
                                   └─▶ run task, emit logs, resolve the Future
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from phasewise.core.task import Task
from phasewise.core.wire import Started
from phasewise.executors.base import IN_FLIGHT_PER_WORKER, BaseExecutor
from phasewise.executors.inline import run_task_here

__all__ = ["ThreadExecutor"]

class _ThreadFuture(Future[Any]):
    """A Future that remembers it was given up on (a thread cannot be stopped)."""

    abandoned = False

    def cancel(self) -> bool:
        if super().cancel():
            return True
        self.abandoned = not self.done()
        return False


_Item = tuple[_ThreadFuture, Task, Callable[[Any], None]] | None


class ThreadExecutor(BaseExecutor):
    """Runs phases on a pool of threads in this process.

    It queues tasks (``reports_start``: it emits ``wire.Started`` when a thread takes
    one, and a task still queued can be withdrawn) and takes ``IN_FLIGHT_PER_WORKER``
    times ``max_workers`` tasks at once (``max_in_flight``), so that a thread finds the
    next task waiting when it finishes one."""

    reports_start = True

    def __init__(
        self, max_workers: int | None = None, thread_name_prefix: str = "phasewise"
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.max_in_flight = IN_FLIGHT_PER_WORKER * self.max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards starting threads and closing
        # One token per thread that finished a task and waits for the next. deque
        # append/pop are atomic, so the hot path (submit, a task ending) takes no lock.
        self._idle: deque[None] = deque()
        self._current: dict[threading.Thread, _ThreadFuture] = {}  # what each thread runs

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future = _ThreadFuture()
        try:
            self._idle.pop()  # an idle thread will take it
        except IndexError:
            if len(self._threads) < self.max_workers:
                self._start_thread()
        self._queue.put((future, task, emit))
        if self.closed:  # shut down from another thread meanwhile: nobody may take it
            Future.cancel(future)
        return future

    def _start_thread(self) -> None:
        with self._lock:
            if self.closed or len(self._threads) >= self.max_workers:
                return
            thread = threading.Thread(
                target=self._work, name=f"{self._prefix}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        get, current, idle = self._queue.get, self._current, self._idle
        me = threading.current_thread()
        while True:
            item = get()
            if item is None:
                return
            future, task, emit = item
            current[me] = future
            if future.set_running_or_notify_cancel():
                emit(Started(time.monotonic()))
                try:
                    result = run_task_here(task, emit)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, task, emit
            current.pop(me, None)
            idle.append(None)

    def close(self, cancel: bool) -> None:
        """Let the threads finish their tasks and leave (``cancel``: queued tasks are
        cancelled first, and running ones are not waited for)."""
        with self._lock:
            threads = list(self._threads)
        if cancel:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if not cancel:
            for thread in threads:
                current = self._current.get(thread)
                if current is None or not current.abandoned:  # an abandoned one runs on
                    thread.join(timeout=2.0)
