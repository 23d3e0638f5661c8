"""ProcessExecutor: a persistent pool of worker processes (multiprocess), tasks cloudpickled.

    submit ─▶ idle worker? ── Run frame ──▶ worker's task pipe
              else pending deque                     │
                                                     ▼
    manager thread ◀── Log/Result/Error frames ── worker's result pipe
       │  polls every result pipe, every worker's sentinel and a wake-up pipe at once
       ├─ Log    → emit(event)               (live, before the result)
       ├─ Result → future.set_result; the worker starts the next task in its pipe,
       │           and takes pending tasks
       └─ sentinel ready (worker died) → drain its pipe, fail only its task with the
          exit code or signal, send the tasks it had not started elsewhere, start a
          replacement if work is waiting

While tasks are quick (see ``_QUICK``), a worker is sent up to ``_DEPTH`` at once: it
goes from one to the next without waiting for the parent, and the parent handles their
results in batches. A task waiting in a worker's pipe is still pending: cancelling it
works, and if the worker had already begun it, the worker is killed.

Unlike ``concurrent.futures.ProcessPoolExecutor``, a dead worker breaks nothing but its
own task. Cancelling a running task's future (timeout, fail_fast, Ctrl-C) kills the
worker's process group — SIGTERM, then SIGKILL after ``kill_grace`` seconds — and the
pool replaces the worker.

Start method: ``auto`` by default. ``fork`` is fast but unsafe once the parent has
threads (a lock another thread holds at the fork stays held in the child forever), and
``spawn`` re-imports everything for every worker. So the pool is filled at first use,
all workers at once and before this pool starts its own manager thread: if at that
moment the process has one thread (counted by the kernel, as CPython's own fork warning
does), the workers are forked; otherwise, and for every worker started later to replace
one that died, they come from a forkserver (a clean single-threaded server), which is
stopped when the last pool using it shuts down, so no process outlives a run.
``start_method="forkserver"``, ``"spawn"`` or ``"fork"`` forces one method.

Past 400 lines on purpose: submitting, the manager thread, a worker's death and killing
are one state machine over the same workers and queues, read best in one place.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from phasewise.core import bootstrap, framing, wire
from phasewise.core.errors import (
    ExecutorError,
    PhaseError,
    SerializationError,
    WireError,
    WorkerDied,
)
from phasewise.core.task import Task
from phasewise.executors import _start
from phasewise.executors._exits import describe_exit, describe_unfinished
from phasewise.executors._pickling import run_frame
from phasewise.executors._syscalls import signal_group, write_all
from phasewise.executors.base import IN_FLIGHT_PER_WORKER, BaseExecutor
from phasewise.executors.future import CancellableFuture
from phasewise.executors.reply import reply_value

__all__ = ["ProcessExecutor"]


_DEPTH = 4
"""Tasks a worker holds at most while its tasks are quick: the one it runs, and the next
ones, already in its pipe, so that it starts each without waiting for the parent to
hear of the one before, and the parent handles results in batches."""

_QUICK = 0.005
"""A task that took less (seconds) is quick. A task in a worker's pipe waits for those
ahead of it even when another worker is free, so tasks are queued ahead only on a worker
whose last task was quick and whose current one has not run longer than this: a task
sent behind one that turns out long still waits for it."""


class _Assigned:
    """A task handed to a worker: running, or waiting in the worker's pipe (its future is
    then still pending: cancelling it works, and stops the worker if it has begun it)."""

    __slots__ = ("emit", "frame", "future")

    def __init__(self, future: CancellableFuture, frame: bytes,
                 emit: Callable[[Any], None]) -> None:
        self.future, self.frame, self.emit = future, frame, emit


class _Worker:
    __slots__ = ("kill_at", "process", "quick", "reader", "result_conn", "result_fd",
                 "sentinel", "started_at", "task_conn", "task_fd", "tasks")

    def __init__(self, process: Any, task_conn: Any, result_conn: Any) -> None:
        self.process = process
        self.task_conn, self.result_conn = task_conn, result_conn
        self.task_fd, self.result_fd = task_conn.fileno(), result_conn.fileno()
        self.sentinel: int = process.sentinel
        self.reader = framing.MessageReader()
        self.tasks: deque[_Assigned] = deque()  # in the order sent; the first one runs
        self.started_at = 0.0  # when the first one began
        self.quick = False  # whether the last task it finished was quick (see _QUICK)
        self.kill_at: float | None = None  # when SIGTERM was sent, for the SIGKILL deadline

    @property
    def future(self) -> CancellableFuture | None:
        """The future of the task the worker runs, if any."""
        return self.tasks[0].future if self.tasks else None


class ProcessExecutor(BaseExecutor):
    """A persistent pool of worker processes; tasks are cloudpickled.

    It queues tasks (``reports_start``: it emits ``wire.Started`` when a worker begins
    one, and a task still queued can be withdrawn) and takes ``IN_FLIGHT_PER_WORKER``
    times ``max_workers`` tasks at once (``max_in_flight``): while tasks are quick, each
    worker holds the next few in its pipe."""

    crosses_processes = True
    reports_start = True

    def __init__(
        self,
        max_workers: int | None = None,
        start_method: str = "auto",
        kill_grace: float = 0.5,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        """``initializer(*initargs)``, if given, runs in every worker process as it starts,
        before it takes a task (as in ``concurrent.futures.ProcessPoolExecutor``): set
        the worker's priority, CPU affinity, resource limits, environment. It must be
        picklable by reference (a module-level function) unless workers are forked.
        If it raises, the worker exits and the task given to it fails with
        ``WorkerDied``; check what it will do in the parent first."""
        import multiprocess

        bootstrap.check_can_start_processes("process")
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if start_method not in _start.START_METHODS:
            raise ValueError(f"start_method must be one of {', '.join(_start.START_METHODS)}, "
                             f"got {start_method!r}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.max_in_flight = IN_FLIGHT_PER_WORKER * self.max_workers
        self.start_method = start_method
        self.kill_grace = kill_grace
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._ctx = multiprocess.get_context("forkserver" if start_method == "auto"
                                             else start_method)
        if self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload(["phasewise.executors.worker", "cloudpickle"])
        self._fork_ctx = multiprocess.get_context("fork")
        self._prepare = wire.encode(bootstrap.prepare_message())  # every worker's first frame
        self._uses_helpers = False  # a forkserver or spawn worker was started: see release
        self._lock = threading.RLock()
        self._workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._pending: deque[tuple[CancellableFuture, bytes, Callable[[Any], None]]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False  # close() has begun (a second one only kills)
        self._manager: threading.Thread | None = None
        self._workers_changed = False  # tells the manager to re-read what to poll

    # submitting

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future = CancellableFuture(self._kill_task, task.phase)
        frame = run_frame(task)
        if isinstance(frame, SerializationError):
            future.set_exception(frame)
            return future
        # Without the lock while every worker is busy (the manager thread, handing out
        # pending tasks as results come back, then does it): two threads contending for
        # it on every task cost more than the rest of submit. The manager marks a worker
        # idle before it looks at the pending tasks, so one of the two sees this task.
        self._pending.append((future, frame, emit))
        if self._idle or len(self._workers) < self.max_workers:
            with self._lock:
                started = self._dispatch(only_idle=True)
            _announce(started)
        if self.closed:  # shut down from another thread meanwhile: nobody may run it
            future.cancel()
        return future

    def _dispatch(self, only_idle: bool = False) -> list[tuple[Callable[[Any], None], _Worker]]:
        """Hand pending tasks to workers: idle ones first (starting workers up to
        max_workers), then, unless ``only_idle``, as the next task of busy ones, up to
        ``_DEPTH`` each while their tasks are quick.

        Call with the lock held; returns the emits of the tasks that started, with their
        workers, for the caller to tell (``_announce``) once the lock is released. Submit
        asks for idle workers only: writing to a busy worker's pipe is the manager
        thread's job, as a system call in the submitting thread would hand the GIL to the
        manager."""
        started: list[tuple[Callable[[Any], None], _Worker]] = []
        while self._pending:
            future, frame, emit = self._pending[0]
            if future.done():  # cancelled while waiting
                self._pending.popleft()
                continue
            worker = self._free_worker(only_idle)
            if worker is None:
                break
            self._pending.popleft()
            if not worker.tasks:  # it starts now
                if not future.set_running_or_notify_cancel():
                    self._idle.appendleft(worker)
                    continue
                worker.started_at = time.monotonic()
                started.append((emit, worker))
            worker.tasks.append(_Assigned(future, frame, emit))
            try:
                write_all(worker.task_fd, frame)
            except OSError:
                pass  # the worker died; its sentinel tells the manager, which fails the task
        return started

    def _free_worker(self, only_idle: bool) -> _Worker | None:
        if not self._idle and len(self._workers) < self.max_workers:
            self._fill()
        if self._idle:
            return self._idle.popleft()
        if only_idle:
            return None
        now = time.monotonic()
        for worker in self._workers:  # queue ahead only behind what looks quick so far
            if (worker.quick and len(worker.tasks) < _DEPTH and worker.kill_at is None
                    and now - worker.started_at < _QUICK):
                return worker
        return None

    def _fill(self) -> None:
        """Start workers: the whole pool at first use (before the manager thread, so that
        they can be forked), then one at a time to replace those that died."""
        first = self._manager is None
        count = self.max_workers - len(self._workers) if first else 1
        if self.start_method == "fork" or (self.start_method == "auto" and first
                                           and _start.single_threaded()):
            ctx = self._fork_ctx
        else:
            ctx = self._ctx
            if not self._uses_helpers:
                self._uses_helpers = True
                _start.forkserver_users(+1)
        try:
            for _ in range(count):
                self._idle.append(self._start_worker(ctx))
        except OSError as exc:  # cannot fork, out of processes: no task can run
            if not self._workers:
                error = ExecutorError("process", f"cannot start a worker process: {exc}")
                for future, _, _ in self._pending:
                    if future.set_running_or_notify_cancel():
                        future.set_exception(error)
                self._pending.clear()
        self._watch_changed()
        self._ensure_manager()

    def _start_worker(self, ctx: Any) -> _Worker:
        from phasewise.executors.worker import process_worker_main

        task_read, task_write = ctx.Pipe(duplex=False)
        result_read, result_write = ctx.Pipe(duplex=False)
        inherited: tuple[int, ...] = ()
        if ctx is self._fork_ctx:  # a forked worker must not hold the pool's pipe ends:
            # a task pipe's write end left open in any worker means that worker's EOF never comes
            inherited = (task_write.fileno(), result_read.fileno(), self._wake_r, self._wake_w,
                         *(fd for w in self._workers for fd in (w.task_fd, w.result_fd)))
        args: tuple[Any, ...] = (task_read, result_write, inherited)
        target: Callable[..., None] = process_worker_main
        if self.initializer is not None:
            target, args = _initialized_worker_main, (*args, self.initializer, self.initargs)
        process = ctx.Process(target=target, args=args, name="phasewise-worker", daemon=True)
        with _start.main_module_hidden():
            process.start()
        task_read.close()
        result_write.close()
        with contextlib.suppress(OSError):  # if it died at once, its sentinel says so
            write_all(task_write.fileno(), self._prepare)
        worker = _Worker(process, task_write, result_read)
        self._workers.append(worker)
        return worker

    def _ensure_manager(self) -> None:
        if self._manager is None:
            self._manager = threading.Thread(target=self._manage, name="phasewise-process-pool",
                                             daemon=True)
            self._manager.start()

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # released: the manager has gone
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already awake-pending

    def _watch_changed(self) -> None:
        """The set of workers changed: the manager re-reads what to poll. Call with the lock."""
        self._workers_changed = True
        self._wake()

    # the manager thread

    def _manage(self) -> None:
        poller = select.poll()
        watched: dict[int, tuple[str, _Worker | None]] = {}
        timeout: float | None = None
        while True:
            if self._workers_changed or timeout is not None:  # timeout: a kill is under way
                with self._lock:
                    if self.closed and not self._workers:
                        return
                    if self._workers_changed:
                        self._workers_changed = False
                        wanted: dict[int, tuple[str, _Worker | None]] = {
                            self._wake_r: ("wake", None)}
                        for w in self._workers:
                            wanted[w.result_fd] = ("result", w)
                            wanted[w.sentinel] = ("sentinel", w)
                        for fd in watched.keys() - wanted.keys():
                            poller.unregister(fd)
                        for fd in wanted.keys() - watched.keys():
                            poller.register(fd, select.POLLIN)
                        watched = wanted
                    timeout = self._next_kill_deadline()
            events = poller.poll(None if timeout is None else max(0, timeout) * 1000)
            for fd, _ in events:
                kind, worker = watched[fd]
                if kind == "wake":
                    os.read(self._wake_r, 4096)
                elif kind == "result" and worker is not None and worker in self._workers:
                    self._read_frames(worker)
                elif kind == "sentinel" and worker is not None and worker in self._workers:
                    self._on_death(worker)
            if timeout is not None:
                self._escalate_kills()

    def _read_frames(self, worker: _Worker, *, until_eof: bool = False) -> bool:
        """Handle what the worker sent; returns False once its pipe is closed.

        Reads into the worker's MessageReader: a large result goes from the pipe straight
        into the memory the unpickled value will use."""
        reader = worker.reader
        while True:
            try:
                n = os.readv(worker.result_fd, [reader.buffer()])
            except OSError:
                n = 0
            if not n:
                return False
            try:
                for message in reader.filled(n):
                    self._on_message(worker, message)
            except WireError as exc:
                self._fail(worker, WireError(f"phase {_phase(worker)!r}: worker sent a {exc}"))
                self._kill_worker(worker)
                return False
            if not until_eof:
                return True

    def _on_message(self, worker: _Worker, message: wire.Message) -> None:
        running = worker.tasks[0] if worker.tasks else None
        future = running.future if running is not None else None
        if isinstance(message, wire.Log):
            if running is not None and not running.future.done():
                running.emit(message)
            return
        if isinstance(message, (wire.Result, wire.Error)):
            error: BaseException | None = None
            try:
                value = reply_value(message, _phase(worker), "process")
            except Exception as exc:  # the phase failed, or its result did not unpickle
                error = exc
            self._release(worker)
            if future is not None and not future.done():
                future.set_exception(error) if error else future.set_result(value)

    def _release(self, worker: _Worker) -> None:
        """The worker has replied: it starts its next task, if it has one, else waits
        idle; pending tasks go to it."""
        started: list[tuple[Callable[[Any], None], _Worker]] = []
        with self._lock:
            if worker.tasks:
                worker.tasks.popleft()
            now = time.monotonic()
            worker.quick = now - worker.started_at < _QUICK
            if worker.kill_at is None:
                if not worker.tasks:
                    self._idle.append(worker)
                elif worker.tasks[0].future.set_running_or_notify_cancel():
                    worker.started_at = now
                    started.append((worker.tasks[0].emit, worker))  # the next, already sent
                else:  # it was cancelled while it waited, and the worker has begun it
                    self._kill_worker(worker)
                started += self._dispatch()
        _announce(started)

    def _on_death(self, worker: _Worker) -> None:
        self._read_frames(worker, until_eof=True)  # keep what it sent before dying
        worker.process.join(0.1)
        exitcode = worker.process.exitcode
        with self._lock:
            self._workers.remove(worker)
            self._watch_changed()
            if worker in self._idle:
                self._idle.remove(worker)
            tasks, worker.tasks = list(worker.tasks), deque()
            future = tasks[0].future if tasks else None
            for waiting in reversed(tasks[1:]):  # never started: they go to another worker
                if self.closed:
                    waiting.future.cancel()
                else:
                    self._pending.appendleft((waiting.future, waiting.frame, waiting.emit))
            started = [] if self.closed else self._dispatch()  # replaces it if work waits
        _announce(started)
        _close_worker(worker)
        if future is not None and not future.done():
            if worker.kill_at is not None:
                future.set_exception(PhaseError(f"phase {future.phase!r} was cancelled",
                                                future.phase))
            else:
                future.set_exception(WorkerDied(
                    describe_exit(future.phase, worker.process.pid, exitcode)
                    + describe_unfinished(worker.reader), future.phase))

    def _fail(self, worker: _Worker, error: BaseException) -> None:
        future = worker.future
        if future is not None and not future.done():
            future.set_exception(error)

    # killing

    def _kill_task(self, future: CancellableFuture) -> None:
        with self._lock:
            for worker in self._workers:
                if worker.future is future:
                    self._kill_worker(worker)
                    return

    def _kill_worker(self, worker: _Worker, sig: int = signal.SIGTERM) -> None:
        with self._lock:
            if worker.kill_at is None:
                worker.kill_at = time.monotonic()
            if worker in self._idle:
                self._idle.remove(worker)
            self._watch_changed()  # the manager now keeps the SIGKILL deadline
        signal_group(worker.process.pid, sig)

    def _next_kill_deadline(self) -> float | None:
        deadlines = [w.kill_at + self.kill_grace for w in self._workers if w.kill_at is not None]
        return (min(deadlines) - time.monotonic()) if deadlines else None

    def _escalate_kills(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [w for w in self._workers
                    if w.kill_at is not None and now >= w.kill_at + self.kill_grace]
        for worker in late:
            signal_group(worker.process.pid, signal.SIGKILL)

    # shutting down

    def close(self, cancel: bool) -> None:
        """Stop the pool (``shutdown`` calls this): idle workers exit, running ones are
        killed (all, if ``cancel``).

        Safe to interrupt: a Ctrl-C in the middle SIGKILLs every worker before it
        propagates, and the forkserver is released whatever happens. A second call (a
        ``shutdown(cancel=True)`` after a ``shutdown()``) kills whatever is still alive.
        """
        with self._lock:
            first, self._stopping = not self._stopping, True
            self._watch_changed()  # the manager leaves once no worker is left
            pending, self._pending = list(self._pending), deque()
            workers = list(self._workers)
        try:
            for future, _, _ in pending:
                future.cancel()
            for worker in workers:
                if cancel or worker.future is not None:
                    self._kill_worker(worker)
                with contextlib.suppress(OSError):
                    worker.task_conn.close()  # an idle worker exits at EOF
            # An idle worker leaves at EOF on its task pipe, unless a process the user
            # forked holds a copy of that pipe: wait a little, then kill it.
            deadline = time.monotonic() + self.kill_grace + 1.0
            for worker in workers:
                worker.process.join(max(0.0, deadline - time.monotonic()))
                if worker.process.exitcode is None:
                    signal_group(worker.process.pid, signal.SIGKILL)
                    worker.process.join(1.0)
        except KeyboardInterrupt:
            for worker in workers:
                signal_group(worker.process.pid, signal.SIGKILL)
            raise
        finally:
            if first:
                self._release_pool(workers)

    def _release_pool(self, workers: list[_Worker]) -> None:
        """Stop the manager thread, close the pool's pipes, let go of the forkserver."""
        try:
            with self._lock:
                self._watch_changed()
            if self._manager is not None:
                self._manager.join(5.0)
                _start.wait_thread_gone(self._manager)
            else:
                for worker in workers:
                    _close_worker(worker)
            with self._lock:  # no wake-up may write to a closed (perhaps reused) fd
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
        finally:
            if self._uses_helpers:
                _start.forkserver_users(-1)


def _initialized_worker_main(task_conn: Any, result_conn: Any, inherited: tuple[int, ...],
                             initializer: Callable[..., object],
                             initargs: tuple[Any, ...]) -> None:
    """A worker that runs ``initializer(*initargs)`` before it takes any task."""
    from phasewise.executors.worker import process_worker_main

    initializer(*initargs)
    process_worker_main(task_conn, result_conn, inherited)


def _announce(started: list[tuple[Callable[[Any], None], _Worker]]) -> None:
    now = time.monotonic()
    for emit, worker in started:
        emit(wire.Started(now, f"pid {worker.process.pid}"))


def _phase(worker: _Worker) -> str:
    return worker.future.phase if worker.future is not None else "?"


def _close_worker(worker: _Worker) -> None:
    for conn in (worker.task_conn, worker.result_conn):
        try:
            conn.close()
        except OSError:
            pass
