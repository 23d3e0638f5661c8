"""Reaching a dask cluster, for the dask executor: connect to a scheduler or start a
LocalCluster on 127.0.0.1, say where its dashboard is, and close what was started.

    connect(address)        ─▶ Client            (unreachable: ExecutorError, "address")
    start_local(n, threads) ─▶ LocalCluster      (its workers preload _dask_worker)
    announce_dashboard(client)                   (only if the dashboard answers)
    close(client, cluster, tracker)              (every call bounded: call_bounded)

Every call to a cluster that may not answer (a kill, a shutdown) goes through
``call_bounded``, which waits at most ``KILL_WAIT`` seconds.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from phasewise.core.errors import ExecutorError

__all__ = ["KILL_WAIT", "announce_dashboard", "call_bounded", "close", "connect",
           "default_workers", "forget_topic", "start_local"]

KILL_WAIT = 5.0
"""Seconds a kill or a shutdown waits for the cluster to answer."""


def connect(address: str, timeout: float) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorError("dask", f"cannot reach the dask scheduler at {address}: "
                            f"{type(exc).__name__}: {exc}", "address") from exc


def start_local(n_workers: int, threads_per_worker: int,
                dashboard: str | None) -> tuple[Any, bool]:
    """A LocalCluster of ``n_workers`` processes on 127.0.0.1, and whether the standard
    library's resource tracker it starts (a child of this process) is ours to stop."""
    import logging
    import multiprocessing.resource_tracker as tracker
    import warnings

    import dask
    import distributed

    tracker_is_ours = getattr(tracker._resource_tracker, "_fd", 0) is None
    # allowed-failures 0: a worker that dies fails its task at once (KilledWorker)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Port .* is already in use")
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
            host="127.0.0.1", dashboard_address=dashboard, silence_logs=logging.ERROR,
            preload=["phasewise.executors._dask_worker"])
    return cluster, tracker_is_ours


def announce_dashboard(client: Any) -> None:
    """Say where the cluster's dashboard is, if it answers there (a scheduler without
    one, ``--no-dashboard`` or no ``bokeh``, still reports the address it would have,
    and may serve other pages on it)."""
    import urllib.request

    link = getattr(client, "dashboard_link", None)
    if not link or not link.startswith(("http://", "https://")):
        return
    try:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(link, timeout=1.0) as reply:
            if reply.status != 200:
                return
    except (OSError, ValueError):
        return
    print(f"phasewise: dask dashboard at {link}", file=sys.stderr)


def forget_topic(client: Any, topic: str) -> None:
    """Empty ``topic`` on the scheduler, which keeps the last events of every topic."""

    def forget(dask_scheduler: Any = None) -> None:  # pickled by value: phasewise need
        broker = getattr(dask_scheduler, "_broker", None)  # not be on the scheduler
        if broker is not None:
            broker.truncate(topic)

    call_bounded(client.run_on_scheduler, forget)


def close(client: Any, cluster: Any, tracker_is_ours: bool) -> None:
    """Close the client (if any), then the LocalCluster if there is one (and the
    tracker its workers started, if it is ours)."""
    try:
        if client is not None:
            client.close(timeout=KILL_WAIT)
    finally:
        if cluster is not None:
            try:
                cluster.close(timeout=2 * KILL_WAIT)
            finally:
                if tracker_is_ours:
                    import multiprocessing.resource_tracker as tracker

                    from phasewise.executors._start import stop_helper

                    stop_helper(tracker._resource_tracker, "_pid")


def call_bounded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
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


def default_workers(n_workers: int | None, max_workers: int | None) -> int:
    """How many workers a LocalCluster gets: ``n_workers``, else ``max_workers`` (-j),
    else the CPU count."""
    return n_workers or max_workers or os.cpu_count() or 1
