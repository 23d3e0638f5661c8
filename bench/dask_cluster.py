"""Issue 12: the dask executor against dask itself, on a 2-worker LocalCluster.

Measured in one run, contenders interleaved, each best of ``--repeats``:

* CPU: ``--phases`` CPU-bound phases of ~``--seconds`` s each (a pure-Python loop,
  calibrated here) run inline, as parallel phases on the dask executor, and as bare
  ``client.submit`` calls of the same function gathered together. "warm" rows share one
  LocalCluster of ``-j`` one-thread worker processes: the one a ``DaskExecutor(-j)``
  starts, made beforehand and left open between runs, with a bare client connected to
  it too; "cold" rows start and close a LocalCluster inside the timing on both sides
  (what ``phasewise run --executor dask -j 2`` does).
* overhead: a chain of ``--chain`` no-op phases on the warm cluster vs as many bare
  ``client.submit(noop).result()`` hops; ``--fan`` no-op parallel phases vs as many bare
  submits gathered — per phase.
* 100 MB: phase ``make`` returns a 100 MB numpy array, ``use`` (depending on it) returns
  its size and a checksum, on a ``SubprocessCluster`` of ``-j`` workers (its scheduler,
  unlike a LocalCluster's, is not in this process, so that every TCP byte counted here
  is the client's). What the parent received and sent is the kernel's count of
  bytes over this process's TCP connections (``TCP_INFO``: ``tcpi_bytes_received`` /
  ``tcpi_bytes_acked``), read when ``use`` has completed and again at the end of the
  run (the run's results hold ``make``'s array, fetched then). Rows: results kept on the
  cluster (the default), ``keep_on_cluster`` set above 100 MB (every result fetched as
  its phase ends, then sent back in the dependant's context), and bare dask passing the
  future.
* live logs: a phase prints ``time.monotonic()`` every ``--interval`` s,
  ``--latency-lines`` times, with ``capture_output=True``; the parent notes
  ``time.monotonic()`` when the matching ``@@PHASE_LOG`` has reached the Store. The same
  on the process executor for reference.

Targets (issue 12): CPU >= 1.6x over inline (bare dask: 1.64x where the issue was
written); per-phase overhead <= 1.2x a bare ``client.submit`` + ``result()``; the 100 MB
array reaches its dependant with no round trip through the parent.

    python bench/dask_cluster.py [--phases 8] [--seconds 0.5] [-j 2] [--repeats 3]
        [--chain 200] [--fan 200] [--latency-lines 200] [--interval 0.01]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from benchutil import fmt, median, pct, print_header, require_executors, table, verdict
from dispatch import compile_like_an_install

SIZE = 100_000_000


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def noop() -> None:
    return None


def make_array() -> Any:
    import numpy as np

    return np.full(SIZE, 7, dtype=np.uint8)


def use_array(context: Any) -> tuple[int, int]:
    array = context["make"]
    return int(array.nbytes), int(array[::4096].sum())


def use_future(array: Any) -> tuple[int, int]:
    return int(array.nbytes), int(array[::4096].sum())


def ticker(n: int, interval: float) -> None:
    for _ in range(n):
        print(f"{time.monotonic():.9f}", flush=True)
        time.sleep(interval)


def tcp_bytes() -> tuple[int, int]:
    """(received, sent) over this process's open TCP connections, as the kernel counts."""
    received = sent = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(int(fd))) as sock:
                if sock.type != socket.SOCK_STREAM or sock.family not in (
                        socket.AF_INET, socket.AF_INET6):
                    continue
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        except OSError:
            continue
        acked, got = struct.unpack_from("QQ", info, 120)  # tcpi_bytes_acked, _received
        received, sent = received + got, sent + acked
    return received, sent


def calibrate(seconds: float) -> int:
    n = 200_000
    while True:
        t = time.perf_counter()
        spin(n)
        took = time.perf_counter() - t
        if took > 0.1:
            return int(n * seconds / took)
        n *= 2


def local_cluster(workers: int) -> Any:
    """A LocalCluster as the dask executor starts one (the bare contender's, cold)."""
    import distributed

    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    silence_logs=logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (N >= 3)")
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--fan", type=int, default=200)
    ap.add_argument("--latency-lines", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.01)
    args = ap.parse_args(argv)
    w, r = args.workers, args.repeats

    print_header(f"dask: phasewise's dask executor vs bare dask.distributed, "
                 f"LocalCluster of {w} workers")
    if not require_executors("dask"):
        return 0
    import distributed

    from phasewise import Phase, Pipeline

    compile_like_an_install()  # the workers' children import phasewise
    import warnings

    warnings.filterwarnings("ignore", "Port .* is already in use")  # a second cluster's
    warnings.filterwarnings("ignore", "Sending large graph")  # the fetched-and-sent-back row
    n = calibrate(args.seconds)
    cpu = Pipeline("cpu", *(Phase(f"p{i}", functools.partial(spin, n + i), parallel=True)
                            for i in range(args.phases)))
    chain = Pipeline("chain", *(
        Phase(f"p{i}", noop, depends_on=(f"p{i - 1}",) if i else (), parallel=True)
        for i in range(args.chain)))
    fan = Pipeline("fan", *(Phase(f"p{i}", noop, parallel=True) for i in range(args.fan)))

    executor = _kept_open(max_workers=w)  # its own LocalCluster, as `-j 2` starts
    client = distributed.Client(executor.cluster, set_as_default=False)
    warm = _Warm(executor)

    def run(pipeline: Pipeline, **kwargs: Any) -> Any:
        result = pipeline.run(max_workers=w, **kwargs)
        if not result.ok:
            raise SystemExit(f"{pipeline.name} failed: {result.counts}")
        return result

    def bare_cpu(on: Any) -> None:
        on.gather([on.submit(spin, n + i, pure=False) for i in range(args.phases)])

    def bare_cold() -> None:
        with local_cluster(w) as fresh, distributed.Client(fresh, set_as_default=False) as c:
            bare_cpu(c)

    def bare_chain() -> None:
        for _ in range(args.chain):
            client.submit(noop, pure=False).result()

    def bare_fan() -> None:
        client.gather([client.submit(noop, pure=False) for _ in range(args.fan)])

    groups: dict[str, tuple[int, dict[str, Callable[[], Any]]]] = {
        f"{args.phases} CPU-bound phases of ~{args.seconds:g} s": (args.phases, {
            "inline (one after another)": lambda: run(cpu, executor="inline"),
            f"bare dask: LocalCluster({w}), submit + gather, warm": lambda: bare_cpu(client),
            f"phasewise dask -j {w}, warm": lambda: run(cpu, executor="dask",
                                                        executors=warm.lookup),
            f"bare dask: LocalCluster({w}), submit + gather, cold": bare_cold,
            f"phasewise dask -j {w}, cold (starts its LocalCluster)":
                lambda: run(cpu, executor="dask"),
        }),
        f"chain of {args.chain} no-op phases (per hop)": (args.chain, {
            "bare dask: submit + result()": bare_chain,
            "phasewise dask, warm": lambda: run(chain, executor="dask", executors=warm.lookup),
        }),
        f"fan-out of {args.fan} no-op phases (per phase)": (args.fan, {
            "bare dask: submit all, gather": bare_fan,
            "phasewise dask, warm": lambda: run(fan, executor="dask", executors=warm.lookup),
        }),
    }
    try:
        for pipeline in (chain, fan):  # warm-up: the workers' children, imports
            run(pipeline, executor="dask", executors=warm.lookup)
        bare_chain()
        times: dict[tuple[str, str], list[float]] = {
            (g, k): [] for g, (_, cs) in groups.items() for k in cs}
        for _ in range(r):
            for g, (_, contenders) in groups.items():
                for label, fn in contenders.items():
                    t = time.perf_counter()
                    fn()
                    times[(g, label)].append(time.perf_counter() - t)
        latency = latency_rows(warm, args.latency_lines, args.interval)
    finally:
        client.close()
        executor.close_now()
    moved = payload_rows(w, r)

    best = {k: min(v) for k, v in times.items()}
    rows, checks = [], []
    for g, (count, contenders) in groups.items():
        labels = list(contenders)
        base_label = labels[0]
        for label in labels:
            took = best[(g, label)]
            if g.startswith(f"{args.phases} CPU"):
                speed = best[(g, base_label)] / took
                rows.append([g if label == base_label else "", label, fmt(took * 1e3),
                             fmt(speed) + "x over inline"])
            else:
                ratio = took / best[(g, base_label)]
                rows.append([g if label == base_label else "", label, fmt(took * 1e3),
                             f"{fmt(took / count * 1e3)} ms per phase, {fmt(ratio)}x bare"])
                if label != base_label:
                    checks.append([f"{g}: phasewise vs bare", f"{fmt(ratio)}x", "<= 1.2x",
                                   verdict(ratio <= 1.2)])
    cpu_g = next(iter(groups))
    inline = best[(cpu_g, "inline (one after another)")]
    for label in groups[cpu_g][1]:
        if label.startswith("phasewise"):
            speed = inline / best[(cpu_g, label)]
            checks.insert(0, [f"CPU: {label}", f"{fmt(speed)}x over inline", ">= 1.6x",
                              verdict(speed >= 1.6)])
    print(table(["workload", "runner", f"best of {r} ms", "result"], rows))
    print()
    print(table(["100 MB array, make → use", "best ms", "MB received by `use` done",
                 "MB sent by `use` done", "MB received by the end"], moved[0]))
    print()
    checks.append(moved[1])
    print(table(["live logs, print → Store", "lines", "median ms", "p99 ms", "max ms"],
                latency))
    print()
    print(table(["check", "measured", "target", "verdict"], checks))
    return 0


def _kept_open(**options: Any) -> Any:
    """A DaskExecutor that the runs using it leave open (``close_now`` closes it), so
    that a run's lookup hands out the executor itself (a kept result names it)."""
    from phasewise.executors import DaskExecutor

    class KeptOpen(DaskExecutor):
        def shutdown(self, cancel: bool = False) -> None:
            pass

        def close_now(self) -> None:
            DaskExecutor.shutdown(self)

    return KeptOpen(**options)


class _Warm:
    """An executor lookup whose ``dask`` executor is ``executor``."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def lookup(self, name: str) -> Any:
        from phasewise.plugins.manager import lookup_executor

        if name == "dask":
            return lambda **_: self.executor
        return lookup_executor(name)


def payload_rows(workers: int, repeats: int) -> tuple[list[list[str]], list[str]]:
    """The 100 MB handoff three ways, on a cluster whose scheduler and workers are
    processes of their own (so that every TCP byte of this process is the client's)."""
    import distributed
    from distributed.deploy.subprocess import SubprocessCluster

    from phasewise import Phase, Pipeline, Store

    pipeline = Pipeline("big", Phase("make", make_array),
                        Phase("use", use_array, depends_on="make"))
    cluster = SubprocessCluster(host="127.0.0.1", n_workers=workers, threads_per_worker=1,
                                dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(workers)
    address = cluster.scheduler_address
    kept = _kept_open(max_workers=workers, address=address)
    fetching = _kept_open(max_workers=workers, address=address, keep_on_cluster=2 * SIZE)
    kept_warm, fetch_warm = _Warm(kept), _Warm(fetching)

    def phasewise(lookup: Callable[[str], Any]) -> tuple[float, int, int, int]:
        store = Store(pipeline.build_reducer())
        at_use: list[tuple[int, int]] = []

        def listener() -> None:
            if not at_use and store.state.phase("use").status == "completed":
                at_use.append(tcp_bytes())

        store.subscribe(listener)
        before = tcp_bytes()
        t = time.perf_counter()
        result = pipeline.run(executor="dask", executors=lookup, store=store)
        took = time.perf_counter() - t
        after = tcp_bytes()
        if not result.ok or result.results["use"] != (SIZE, 7 * len(range(0, SIZE, 4096))):
            raise SystemExit(f"the 100 MB run failed: {result.counts} {result.results}")
        return (took, at_use[0][0] - before[0], at_use[0][1] - before[1],
                after[0] - before[0])

    def bare() -> tuple[float, int, int, int]:
        before = tcp_bytes()
        t = time.perf_counter()
        made = client.submit(make_array, pure=False)
        used = client.submit(use_future, made, pure=False).result()
        took = time.perf_counter() - t
        after = tcp_bytes()
        del made
        if used[0] != SIZE:
            raise SystemExit("bare dask's 100 MB run failed")
        return took, after[0] - before[0], after[1] - before[1], after[0] - before[0]

    contenders = {
        "bare dask: submit(use, future_of_make)": bare,
        "phasewise dask, kept on the cluster (default)": lambda: phasewise(kept_warm.lookup),
        "phasewise dask, keep_on_cluster=200 MB (fetched, sent back)":
            lambda: phasewise(fetch_warm.lookup),
    }
    try:
        got: dict[str, list[tuple[float, int, int, int]]] = {k: [] for k in contenders}
        for fn in contenders.values():  # warm-up: the workers' children, numpy
            fn()
        for _ in range(repeats):
            for label, fn in contenders.items():
                got[label].append(fn())
    finally:
        kept.close_now()
        fetching.close_now()
        client.close()
        cluster.close()
    rows = []
    for label, samples in got.items():
        took, received, sent, total = min(samples)
        rows.append([label, fmt(took * 1e3), fmt(received / 1e6), fmt(sent / 1e6),
                     fmt(total / 1e6)])
    best = min(got["phasewise dask, kept on the cluster (default)"])
    check = ["100 MB to its dependant: MB through the parent before `use` completed",
             f"{fmt(best[1] / 1e6)} in, {fmt(best[2] / 1e6)} out",
             "no round trip (≪ 100 in, ≪ 100 out)",
             verdict(best[1] < SIZE / 10 and best[2] < SIZE / 10)]
    return rows, check


def latency_rows(warm: _Warm, lines: int, interval: float) -> list[list[str]]:
    from phasewise import Phase, Pipeline, Store
    from phasewise.core.actions import PHASE_LOG

    pipeline = Pipeline("tick", Phase("tick", functools.partial(ticker, lines, interval)),
                        capture_output=True)
    class ClockStore(Store):
        """Notes each line's delay when its @@PHASE_LOG has reached the Store."""

        def __init__(self, reducer: Any) -> None:
            super().__init__(reducer)
            self.delays: list[float] = []

        def dispatch(self, action: Any) -> None:
            super().dispatch(action)
            if action.type == PHASE_LOG:
                self.delays.append(time.monotonic() - float(action.payload["line"]))

    rows = []
    for label, kwargs in (("dask (worker events)", {"executor": "dask",
                                                    "executors": warm.lookup}),
                          ("process executor, for reference", {"executor": "process"})):
        store = ClockStore(pipeline.build_reducer())
        result = pipeline.run(max_workers=1, store=store, **kwargs)
        if not result.ok or len(store.delays) != lines:
            raise SystemExit(f"the ticker on {label} failed: {result.counts}, "
                             f"{len(store.delays)} lines")
        ms = [d * 1e3 for d in store.delays]
        rows.append([label, str(len(ms)), fmt(median(ms)), fmt(pct(ms, 99)), fmt(max(ms))])
    return rows


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    sys.exit(code)
