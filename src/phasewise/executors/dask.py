"""DaskExecutor: phases on a dask.distributed cluster, with live logs and hard timeouts.

    start(task) ─▶ client.submit(run_task, task.payload, topic, id, retries=0)
                      dask worker: run_task ─▶ child process: run_payload  (_dask_worker)
    worker.log_event(topic, Log) ──▶ scheduler ──▶ subscribe_topic(topic) ─▶ emit(Log)
    dask future done ─▶ wait for every Log it sent (bounded) ─▶ reply_value ─▶ our future
    "remove-worker" on topic "all" ─▶ its phases fail now: WorkerDied naming the worker
    future.cancel() (timeout, fail_fast, Ctrl-C) ─▶ client.run(kill_task) on its worker:
                      SIGKILL the child running the phase; the dask future is cancelled

With ``address`` (or ``DASK_SCHEDULER_ADDRESS``) it connects to that scheduler; without,
it starts a ``LocalCluster`` of ``n_workers`` (default ``max_workers``) worker processes
on 127.0.0.1, closed at shutdown. dask never retries a phase: phasewise owns retries.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures
from typing import Any

from phasewise.core import bootstrap, wire
from phasewise.core.errors import ExecutorError, WorkerDied
from phasewise.core.task import Task
from phasewise.executors._dask_worker import kill_task, release_children, run_task
from phasewise.executors.base import BaseExecutor
from phasewise.executors.future import CancellableFuture
from phasewise.executors.reply import reply_value

__all__ = ["INSTALL", "DaskExecutor"]

INSTALL = "pip install 'phasewise[dask]'"
KILL_WAIT = 5.0
"""Seconds a kill or a shutdown waits for the cluster to answer."""
LOG_WAIT = 10.0
"""Seconds a finished task's future waits for the last of its Log events."""


class _Running:
    """One submitted task, as the parent follows it."""

    __slots__ = ("dask", "emit", "future", "key", "phase", "received", "sent", "worker")

    def __init__(self, phase: str, emit: Callable[[Any], None], future: CancellableFuture,
                 key: str) -> None:
        self.phase, self.emit, self.future, self.key = phase, emit, future, key
        self.dask: Any = None
        self.received = 0
        self.sent: int | None = None
        self.worker = ""


def _connect(address: str, timeout: float) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorError("dask", f"cannot reach the dask scheduler at {address}: "
                            f"{type(exc).__name__}: {exc}", "address") from exc


class DaskExecutor(BaseExecutor):
    """Runs every phase on a dask.distributed cluster, each in a child process of a worker."""

    crosses_processes = True

    def __init__(
        self,
        max_workers: int | None = None,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        dashboard: str | None = None,
        connect_timeout: float = 10.0,
        resources: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        try:
            import dask
            import distributed
        except ImportError as exc:
            raise ExecutorError("dask", f"dask.distributed is not installed ({exc}): "
                                f"{INSTALL}") from exc
        self.max_workers = max_workers
        self.resources = {k: dict(v) for k, v in (resources or {}).items()}
        """Dask resource tags by phase name, passed to ``client.submit(resources=...)``."""
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self.cluster: Any = None
        self._tracker_is_ours = False
        if self.address:
            self.client = _connect(self.address, connect_timeout)
        else:
            bootstrap.check_can_start_processes("dask")
            import logging
            import multiprocessing.resource_tracker as tracker
            import warnings

            # LocalCluster's worker processes start the standard library's resource
            # tracker, a child of this process: stopped with the cluster if it is ours
            self._tracker_is_ours = getattr(tracker._resource_tracker, "_fd", 0) is None

            # allowed-failures 0: a worker that dies fails its task at once (KilledWorker)
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
                    warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Port .* is already in use")
                self.cluster = distributed.LocalCluster(
                    n_workers=n_workers or max_workers or os.cpu_count() or 1,
                    threads_per_worker=threads_per_worker, processes=True,
                    host="127.0.0.1", dashboard_address=dashboard,
                    silence_logs=logging.ERROR,
                    preload=["phasewise.executors._dask_worker"])
            try:
                self.client = distributed.Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
        if dashboard or self.address:
            link = getattr(self.client, "dashboard_link", None)
            if link:
                print(f"phasewise: dask dashboard at {link}", file=sys.stderr)
        self.topic = f"phasewise-{uuid.uuid4().hex}"
        self._lock = threading.Condition()
        self._tasks: dict[str, _Running] = {}
        self._killers: list[threading.Thread] = []
        self.client.subscribe_topic(self.topic, self._on_event)
        self.client.subscribe_topic("all", self._on_cluster_event)

    # ── submitting ──────────────────────────────────────────────────────────

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future = CancellableFuture(self._kill, task.phase)
        future.set_running_or_notify_cancel()
        try:
            payload = task.payload
        except Exception as exc:  # the context would not pickle: this phase fails
            future.set_exception(exc)
            return future
        task_id = uuid.uuid4().hex
        record = _Running(task.phase, emit, future, f"phasewise-{task.phase}-{task_id}")
        future.task_id = task_id  # type: ignore[attr-defined]
        with self._lock:
            self.check_open()
            self._tasks[task_id] = record
        record.dask = self.client.submit(
            run_task, payload, self.topic, task_id, key=record.key, pure=False, retries=0,
            resources=self.resources.get(task.phase))
        record.dask.add_done_callback(lambda f: self._finish(task_id, f))
        return future

    # ── events from the cluster (the client's event loop) ──────────────────

    def _on_event(self, event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with self._lock:
            record = self._tasks.get(msg.get("task", ""))
            if record is None:
                return
            if "start" in msg:
                record.worker = msg["start"]
                return
            record.received += 1
            self._lock.notify_all()
        if not record.future.done():
            record.emit(wire.Log(msg["stream"], msg["lines"], time.monotonic()))

    def _on_cluster_event(self, event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        worker, keys = msg.get("worker", ""), set(msg.get("processing-tasks") or ())
        with self._lock:
            lost = [r for r in self._tasks.values()
                    if r.key in keys or (r.worker and r.worker == worker)]
        for record in lost:
            self._fail(record, WorkerDied(
                f"phase {record.phase!r}: the dask worker {worker} running it died "
                "(or was lost) before it replied", record.phase))
            threading.Thread(target=self._cancel_dask, args=(record,), daemon=True).start()

    # ── outcomes ────────────────────────────────────────────────────────────

    def _finish(self, task_id: str, dask_future: Any) -> None:
        """The dask future is done (a dask callback thread): resolve ours."""
        with self._lock:
            record = self._tasks.get(task_id)
        if record is None:
            return
        try:
            outcome: Any = self._outcome(record, dask_future)
        except BaseException as exc:
            outcome = exc
        with self._lock:
            self._tasks.pop(task_id, None)
        if isinstance(outcome, BaseException):
            self._fail(record, outcome)
        elif not record.future.done():
            try:
                record.future.set_result(outcome)
            except Exception:  # resolved meanwhile (a lost worker)
                pass

    def _outcome(self, record: _Running, dask_future: Any) -> Any:
        from distributed import KilledWorker

        phase = record.phase
        if dask_future.cancelled() or record.future.kill_requested:
            raise WorkerDied(f"phase {phase!r} was cancelled", phase)
        try:
            status, data, sent, worker = dask_future.result()
        except KilledWorker as exc:
            last = getattr(getattr(exc, "last_worker", None), "address", "") or record.worker
            raise WorkerDied(f"phase {phase!r}: the dask worker {last} running it died "
                             "before it replied", phase) from None
        except CancelledError:
            raise WorkerDied(f"phase {phase!r} was cancelled", phase) from None
        except Exception as exc:
            raise WorkerDied(f"phase {phase!r}: its dask task failed on "
                             f"{record.worker or 'a worker'}: {type(exc).__name__}: {exc}",
                             phase) from exc
        deadline = time.monotonic() + LOG_WAIT
        with self._lock:  # every Log the task sent reaches emit before its future resolves
            while record.received < sent and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
        if status != "reply":
            raise WorkerDied(f"phase {phase!r}: on dask worker {worker}, {data}", phase)
        return reply_value(data, phase, "dask")

    @staticmethod
    def _fail(record: _Running, exc: BaseException) -> None:
        if not record.future.done():
            try:
                record.future.set_exception(exc)
            except Exception:  # resolved meanwhile
                pass

    # ── cancelling and shutting down ───────────────────────────────────────

    def _kill(self, future: CancellableFuture) -> None:
        """Stop a running task: kill its child process on the worker, cancel it in dask."""
        with self._lock:
            record = self._tasks.get(getattr(future, "task_id", ""))
        if record is None:
            return
        thread = threading.Thread(target=self._cancel_dask, args=(record, True), daemon=True)
        with self._lock:
            self._killers = [t for t in self._killers if t.is_alive()] + [thread]
        thread.start()

    def _cancel_dask(self, record: _Running, kill: bool = False) -> None:
        if kill:
            workers = [record.worker] if record.worker else None
            self._bounded(kill_task, _task_id(record), workers=workers)
        _call_bounded(record.dask.cancel)
        self._fail(record, WorkerDied(f"phase {record.phase!r} was cancelled", record.phase))

    def _bounded(self, function: Callable[..., Any], *args: Any,
                 workers: list[str] | None = None) -> None:
        """``client.run(function, *args)`` on the workers, waiting at most KILL_WAIT."""
        _call_bounded(self.client.run, function, *args, workers=workers, on_error="ignore")

    def close(self, cancel: bool) -> None:
        """Wait for the running tasks (``cancel``: kill them first), then close the client
        and any LocalCluster this executor started."""
        with self._lock:
            running = list(self._tasks.values())
        try:
            if cancel:
                for record in running:
                    record.future.cancel()
                with self._lock:
                    killers = list(self._killers)
                for thread in killers:
                    thread.join(5.0)
            wait_futures([r.future for r in running], timeout=None if not cancel else 5.0)
        finally:
            self._disconnect()

    def _disconnect(self) -> None:
        self._bounded(release_children)
        for topic in (self.topic, "all"):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:
                pass
        try:
            self.client.close(timeout=5)
        finally:
            if self.cluster is not None:
                try:
                    self.cluster.close(timeout=10)
                finally:
                    if self._tracker_is_ours:
                        import multiprocessing.resource_tracker as tracker

                        from phasewise.executors._start import stop_helper

                        stop_helper(tracker._resource_tracker, "_pid")


def _call_bounded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``function`` in a thread of its own, waiting at most KILL_WAIT for it (a
    cluster that does not answer must not hold up a cancel or a shutdown)."""

    def call() -> None:
        try:
            function(*args, **kwargs)
        except Exception:
            pass

    thread = threading.Thread(target=call, daemon=True, name="phasewise-dask-call")
    thread.start()
    thread.join(KILL_WAIT)


def _task_id(record: _Running) -> str:
    return record.key.rsplit("-", 1)[-1]
