"""DaskExecutor: phases on a dask.distributed cluster, with live logs and hard timeouts.

    start(task) ─▶ client.submit(run_task, task.payload, topic, id, inputs, retries=0)
                      dask worker: run_task ─▶ child process: run_payload  (_dask_worker)
    worker.log_event(topic, start) ──▶ our future runs: emit(Started(worker address))
    worker.log_event(topic, Log) ──▶ scheduler ──▶ subscribe_topic(topic) ─▶ emit(Log)
    worker.log_event(topic, end: result|error, size, the reply if small) ─▶ our future:
        a result over keep_on_cluster bytes: Remote (the dask future; fetched on demand)
        a small reply (on the event): reply_value ─▶ the value or the phase's error
        else, once the dask future is done: fetch the reply, reply_value
    a later phase's context holding our Remote ─▶ its dask future in ``inputs``: dask
        hands the bytes to the worker (worker to worker), never through this process
    "remove-worker" on topic "all" ─▶ its phases fail now: WorkerDied naming the worker
    future.cancel() (timeout, fail_fast, Ctrl-C) ─▶ client.run(kill_task) on its worker:
                      SIGKILL the child running the phase; the dask future is cancelled

With ``address`` (or ``DASK_SCHEDULER_ADDRESS``) it connects to that scheduler; without,
it starts a ``LocalCluster`` of ``n_workers`` (default ``max_workers``) worker processes
on 127.0.0.1, closed at shutdown. dask never retries a phase: phasewise owns retries.
Tasks wait in dask's queue (``reports_start``): a phase starts, and its timeout counts,
when a worker begins it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures
from typing import Any

from phasewise.core import bootstrap, wire
from phasewise.core.context import PhaseContext
from phasewise.core.errors import ExecutorError, WorkerDied
from phasewise.core.task import Remote, Task
from phasewise.executors import _dask_cluster as _cluster
from phasewise.executors._dask_worker import Input, kill_task, release_children, run_task
from phasewise.executors.base import IN_FLIGHT_PER_WORKER, BaseExecutor
from phasewise.executors.future import CancellableFuture
from phasewise.executors.reply import reply_value

__all__ = ["INSTALL", "DaskExecutor"]

INSTALL = "pip install 'phasewise[dask]'"
LOG_WAIT = 10.0
"""Seconds a finished task's future waits for the last of its Log events."""
KEEP_ON_CLUSTER = 1_000_000
"""Bytes (pickled) over which a result stays on the cluster until something needs it."""


class _Running:
    """One submitted task, as the parent follows it."""

    __slots__ = ("begun", "dask", "emit", "end", "future", "key", "phase", "received",
                 "resolved", "worker")

    def __init__(self, phase: str, emit: Callable[[Any], None], future: CancellableFuture,
                 key: str) -> None:
        self.phase, self.emit, self.future, self.key = phase, emit, future, key
        self.dask: Any = None
        self.begun = False  # Started emitted (or the future withdrawn)
        self.end: dict[str, Any] | None = None  # the worker's last event: how it ended
        self.received = 0
        self.resolved = False  # claimed by the path that resolves our future
        self.worker = ""


class DaskExecutor(BaseExecutor):
    """Runs every phase on a dask.distributed cluster, each in a child process of a worker.

    A phase's ``Phase(resources={"GPU": 1})`` (and ``resources``, by phase name, here)
    go to ``client.submit(resources=...)``: dask runs it only on a worker started with
    ``--resources GPU=1``. A result whose pickle is over ``keep_on_cluster`` bytes stays
    on the cluster: a later phase on this executor gets it there; the parent fetches it
    only when something here needs it (see ``phasewise.core.task.Remote``)."""

    crosses_processes = True
    reports_start = True
    max_in_flight: int | None = None
    """On a cluster of its own whose threads are no more than ``max_workers``, five tasks
    per thread, so that dask has the next one queued when a worker frees (the extra ones
    stay pending); on any other cluster ``max_workers``, which then limits how many phases
    run at once."""

    def __init__(
        self,
        max_workers: int | None = None,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        dashboard: str | None = None,
        connect_timeout: float = 10.0,
        resources: Mapping[str, Mapping[str, float]] | None = None,
        keep_on_cluster: int = KEEP_ON_CLUSTER,
    ) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise ExecutorError("dask", f"dask.distributed is not installed ({exc}): "
                                f"{INSTALL}") from exc
        if isinstance(keep_on_cluster, bool) or not isinstance(keep_on_cluster, int) or \
                keep_on_cluster < 0:
            raise ValueError(f"keep_on_cluster must be a whole number of bytes >= 0, got "
                             f"{keep_on_cluster!r}")
        self.keep_on_cluster = keep_on_cluster
        self.max_workers = max_workers
        self.resources = {k: dict(v) for k, v in (resources or {}).items()}
        """Dask resource tags by phase name, passed to ``client.submit(resources=...)``."""
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self.cluster: Any = None
        self._tracker_is_ours = False
        if self.address:
            self.client = _cluster.connect(self.address, connect_timeout)
        else:
            bootstrap.check_can_start_processes("dask")
            self.cluster, self._tracker_is_ours = _cluster.start_local(
                _cluster.default_workers(n_workers, max_workers), threads_per_worker,
                dashboard)
            slots = len(self.cluster.workers) * threads_per_worker
            if max_workers is None or slots <= max_workers:  # the cluster is the limit
                self.max_in_flight = IN_FLIGHT_PER_WORKER * slots
            try:
                self.client = distributed.Client(self.cluster, set_as_default=False)
            except BaseException:
                _cluster.close(None, self.cluster, self._tracker_is_ours)
                raise
        if dashboard or self.address:
            _cluster.announce_dashboard(self.client)
        self.topic = f"phasewise-{uuid.uuid4().hex}"
        self._lock = threading.Condition()
        self._tasks: dict[str, _Running] = {}
        self._killers: list[threading.Thread] = []
        self.client.subscribe_topic(self.topic, self._on_event)
        self.client.subscribe_topic("all", self._on_cluster_event)

    # ── submitting ──────────────────────────────────────────────────────────

    def start(self, task: Task, emit: Callable[[Any], None]) -> Future[Any]:
        future = CancellableFuture(self._kill, task.phase)
        try:
            inputs, payload = self._inputs(task)
        except Exception as exc:  # the context would not pickle: this phase fails
            future.set_exception(exc)
            return future
        task_id = uuid.uuid4().hex
        record = _Running(task.phase, emit, future, f"phasewise-{task.phase}-{task_id}")
        future.task_id = task_id  # type: ignore[attr-defined]
        resources = {**(task.resources or {}), **self.resources.get(task.phase, {})}
        with self._lock:
            self.check_open()
            self._tasks[task_id] = record
        try:
            record.dask = self.client.submit(
                run_task, payload, self.topic, task_id, inputs or None, key=record.key,
                pure=False, retries=0, resources=resources or None)
        except BaseException:  # the client is closing, say: nothing of it is left waiting
            with self._lock:
                self._tasks.pop(task_id, None)
            raise
        future.add_done_callback(lambda f: self._withdrawn(task_id) if f.cancelled() else None)
        record.dask.add_done_callback(lambda f: self._finish(task_id, f))
        return future

    def _inputs(self, task: Task) -> tuple[dict[str, Any], bytes]:
        """The dask futures of the results this executor kept that ``task``'s context
        holds, and the task's payload with each of them replaced by an ``Input`` that the
        worker fills in (the bytes go from worker to worker, not through here)."""
        context = task.context
        kept = {} if context is None else {
            name: value for name, value in context.items()
            if type(value) is Remote and value.holder is self and value.ref is not None}
        if not kept:
            return {}, task.payload
        inputs, results = {}, dict(context.items()) if context is not None else {}
        for n, (name, value) in enumerate(kept.items()):
            key = f"{uuid.uuid4().hex}-{n}"
            inputs[key] = value.ref
            results[name] = Input(key, name)
        if isinstance(context, PhaseContext):
            _, (phase, _results, upstream) = context.__reduce__()
            new_context: Mapping[str, Any] = PhaseContext(phase, results, upstream)
        else:
            new_context = results
        return inputs, Task(task.phase, task.handler, new_context, attempt=task.attempt,
                            capture_output=task.capture_output, params=task.params,
                            workdir=task.workdir).payload

    # ── events from the cluster (the client's event loop) ──────────────────

    def _on_event(self, event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with self._lock:
            record = self._tasks.get(msg.get("task", ""))
            if record is None:
                return
            if "start" in msg:
                record.worker = msg["start"]
            elif "end" in msg:
                record.end = msg
                self._lock.notify_all()
                early = self._early(record, msg)
                if not early:
                    return
            else:
                record.received += 1
                self._lock.notify_all()
        if "start" in msg:
            self._begin(record)
        elif "end" in msg:  # resolved from the event: no round trip to fetch the result
            self._resolve(record, lambda: self._value_from_end(record, msg))
        elif not record.future.done():
            record.emit(wire.Log(msg["stream"], msg["lines"], time.monotonic()))

    def _early(self, record: _Running, end: dict[str, Any]) -> bool:
        """Whether the task's end event (under the lock) settles its future: every Log
        came, and it carries a small reply or announces a result to keep. Claims it."""
        settles = (end["end"] != "died" and record.received >= end["sent"]
                   and record.dask is not None and not record.resolved
                   and not record.future.kill_requested
                   and ("reply" in end or (end["end"] == "result"
                                           and end["size"] > self.keep_on_cluster)))
        if settles:
            record.resolved = True
            self._tasks.pop(_task_id(record), None)
        return settles

    def _value_from_end(self, record: _Running, end: dict[str, Any]) -> Any:
        phase, dask_future = record.phase, record.dask
        if end["end"] == "result" and end["size"] > self.keep_on_cluster:
            return Remote(phase, self, lambda: self._fetch(dask_future, phase),
                          ref=dask_future, nbytes=end["size"])
        return reply_value(end["reply"], phase, "dask")

    def _begin(self, record: _Running) -> None:
        """A worker has begun the task: its future runs, ``Started`` names the worker. A
        future withdrawn meanwhile (cancelled while queued): the task is killed."""
        with self._lock:
            if record.begun:
                return
            record.begun = True
        if record.future.set_running_or_notify_cancel():
            record.emit(wire.Started(time.monotonic(), record.worker))
        else:
            self._kill_later(record)

    def _withdrawn(self, task_id: str) -> None:
        """Our future was cancelled while the task waited in dask's queue."""
        with self._lock:
            record = self._tasks.pop(task_id, None)
            if record is not None:
                record.begun = True
        if record is not None and record.dask is not None:
            self._kill_later(record)

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
            # a scheduler allowing retries may have given it to another worker already
            threading.Thread(target=self._cancel_dask, args=(record, True, True),
                             daemon=True).start()

    # ── outcomes ────────────────────────────────────────────────────────────

    def _finish(self, task_id: str, dask_future: Any) -> None:
        """The dask future is done (a dask callback thread): resolve ours, unless its end
        event did already."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None or record.resolved:
                return
            record.resolved = True
        self._resolve(record, lambda: self._outcome(record, dask_future))

    def _resolve(self, record: _Running, outcome_of: Callable[[], Any]) -> None:
        """Resolve our future with ``outcome_of()`` (or what it raises), once: ``Started``
        first, as every event comes before the future resolves."""
        try:
            outcome: Any = outcome_of()
        except BaseException as exc:
            outcome = exc
        with self._lock:
            self._tasks.pop(_task_id(record), None)
        self._begin(record)
        if isinstance(outcome, BaseException):
            self._fail(record, outcome)
        elif not record.future.done():
            try:
                record.future.set_result(outcome)
            except Exception:  # resolved meanwhile (a lost worker)
                pass

    def _outcome(self, record: _Running, dask_future: Any) -> Any:
        phase = record.phase
        if dask_future.cancelled() or record.future.kill_requested:
            raise WorkerDied(f"phase {phase!r} was cancelled", phase)
        end = None
        if dask_future.status == "finished":  # its last event says how it ended
            end = self._wait_for(record, lambda: record.end is not None and
                                 record.received >= record.end["sent"])
        if end is not None and end["end"] == "result" and end["size"] > self.keep_on_cluster:
            return Remote(phase, self, lambda: self._fetch(dask_future, phase),
                          ref=dask_future, nbytes=end["size"])
        status, data, sent, worker = self._result(dask_future, record)
        self._wait_for(record, lambda: record.received >= sent)
        if status != "reply":
            raise WorkerDied(f"phase {phase!r}: on dask worker {worker}, {data}", phase)
        return reply_value(data, phase, "dask")

    def _wait_for(self, record: _Running, done: Callable[[], bool]) -> dict[str, Any] | None:
        """Wait (at most LOG_WAIT) until ``done()``: every Log the task sent reaches emit
        before its future resolves. Returns the task's end event, if it came."""
        deadline = time.monotonic() + LOG_WAIT
        with self._lock:
            while not done() and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return record.end if done() else None

    @staticmethod
    def _result(dask_future: Any, record: _Running) -> tuple[str, Any, int, str]:
        """What ``run_task`` returned, or the WorkerDied its dask future stands for."""
        from distributed import KilledWorker

        phase = record.phase
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
        return status, data, sent, worker

    def _fetch(self, dask_future: Any, phase: str) -> Any:
        """A kept result's value, fetched from the cluster (``Remote.fetch``)."""
        if self.closed and self._disconnected:
            raise WorkerDied(f"phase {phase!r}: its result stayed on the dask cluster, and "
                             "the executor has shut down", phase)
        try:
            status, data, _, worker = dask_future.result()
        except Exception as exc:
            raise WorkerDied(f"phase {phase!r}: its result, kept on the dask cluster, could "
                             f"not be fetched: {type(exc).__name__}: {exc}", phase) from exc
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
        self._kill_later(record)

    def _kill_later(self, record: _Running) -> None:
        """Kill the task on its worker and cancel it in dask, from a thread of its own."""
        thread = threading.Thread(target=self._cancel_dask, args=(record, True), daemon=True)
        with self._lock:
            self._killers = [t for t in self._killers if t.is_alive()] + [thread]
        thread.start()

    def _cancel_dask(self, record: _Running, kill: bool = False,
                     everywhere: bool = False) -> None:
        """Cancel the task in dask; ``kill``: kill its child on its worker first (on every
        worker, ``everywhere``: a kill that comes first stops it when it begins)."""
        if kill:
            workers = [record.worker] if record.worker and not everywhere else None
            self._bounded(kill_task, _task_id(record), workers=workers)
        if record.dask is not None:
            _cluster.call_bounded(record.dask.cancel)
        self._fail(record, WorkerDied(f"phase {record.phase!r} was cancelled", record.phase))

    def _bounded(self, function: Callable[..., Any], *args: Any,
                 workers: list[str] | None = None) -> None:
        """``client.run(function, *args)`` on the workers, waiting at most KILL_WAIT."""
        _cluster.call_bounded(self.client.run, function, *args, workers=workers, on_error="ignore")

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

    _disconnected = False

    def _disconnect(self) -> None:
        self._disconnected = True
        self._bounded(release_children)
        _cluster.forget_topic(self.client, self.topic)  # its events, kept there
        for topic in (self.topic, "all"):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:
                pass
        _cluster.close(self.client, self.cluster, self._tracker_is_ours)


def _task_id(record: _Running) -> str:
    return record.key.rsplit("-", 1)[-1]
