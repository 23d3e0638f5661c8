"""Issue 3: a large result crossing back from a process worker.

A phase returns a ``--mb`` MB numpy array (float64, filled in the worker). Timed from
submit to the array in the parent, on warm pools (started and warmed up outside the
timing), best of ``--repeats``, contenders interleaved:

* ``Pipeline.run(executor="process")`` with its pool kept warm across runs;
* a bare ``concurrent.futures.ProcessPoolExecutor`` returning the same array;
* the floor: a worker process sending the array with pickle protocol 5 and out-of-band
  buffers over a ``multiprocessing`` Pipe;
* for information: the same pipeline cold (pool started inside the timing), and making
  the array in this process (what every row above includes).

Target (issue 3): phasewise's MB/s at least the bare pool's (ratio >= 1.0); pickle-5
out-of-band reaches >1 GB/s.

    python bench/payload.py [--mb 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchutil import fmt, print_header, require_executors, table, verdict, warm_executor


def make_array(mb: int) -> Any:
    import numpy as np

    return np.full(mb * (1 << 20) // 8, 1.5)


def _oob_server(conn: Any, mb: int) -> None:
    while conn.recv() is not None:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(make_array(mb), protocol=5, buffer_callback=buffers.append)
        conn.send((head, len(buffers)))
        for buf in buffers:
            conn.send_bytes(buf.raw())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=100, help="array size in MB (MiB)")
    ap.add_argument("--repeats", type=int, default=5, help="best of N (N >= 3)")
    ap.add_argument("--start-method", default=None,
                    help="phasewise process executor's start_method (default: its own)")
    args = ap.parse_args(argv)
    mb, r = args.mb, args.repeats
    size = mb * (1 << 20)

    print_header(f"payload: a {mb} MB numpy result from a process worker")
    if not require_executors("process"):
        return 0
    try:
        import numpy as np
    except ImportError:
        print("SKIPPED: numpy is not installed (pip install numpy).")
        return 0
    from phasewise import Phase, Pipeline

    options = {"start_method": args.start_method} if args.start_method else {}
    pipeline = Pipeline("payload", Phase("big", functools.partial(make_array, mb)))
    expected = make_array(mb)

    def check(value: Any) -> None:
        if not isinstance(value, np.ndarray) or value.nbytes != size or value[-1] != 1.5:
            raise SystemExit(f"wrong result: {type(value).__name__}")

    # the pools: bare first (it forks; see dispatch.py on fork and the forkserver)
    bare_pool = ProcessPoolExecutor(1)
    check(bare_pool.submit(make_array, mb).result())
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    server = ctx.Process(target=_oob_server, args=(child_end, mb), daemon=True)
    server.start()
    lookup, close = warm_executor("process", 1, **options)

    def phasewise(hot: bool = True) -> float:
        t0 = time.perf_counter()
        result = pipeline.run(executor="process", max_workers=1,
                              executor_options=None if hot else options,
                              executors=lookup if hot else None)
        took = time.perf_counter() - t0
        if not result.ok:
            raise SystemExit(f"phase failed: {result.state.phase('big').error}")
        check(result.results["big"])
        return took

    def bare() -> float:
        t0 = time.perf_counter()
        value = bare_pool.submit(make_array, mb).result()
        took = time.perf_counter() - t0
        check(value)
        return took

    def oob() -> float:
        t0 = time.perf_counter()
        parent_end.send(True)
        head, count = parent_end.recv()
        buffers = [parent_end.recv_bytes() for _ in range(count)]
        value = pickle.loads(head, buffers=buffers)
        took = time.perf_counter() - t0
        check(value)
        return took

    def local() -> float:
        t0 = time.perf_counter()
        make_array(mb)
        return time.perf_counter() - t0

    contenders = {
        "bare ProcessPoolExecutor(1), warm": bare,
        "phasewise process executor, warm": phasewise,
        "floor: pickle 5, out-of-band buffers over a Pipe": oob,
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    try:
        for fn in contenders.values():
            fn()  # warm-up
        for _ in range(r):
            for label, fn in contenders.items():
                times[label].append(fn())
    finally:
        parent_end.send(None)
        server.join(5)
        bare_pool.shutdown()
        close()
    cold = min(phasewise(hot=False) for _ in range(max(3, r // 2)))
    make = min(local() for _ in range(r))
    del expected
    best = {k: min(v) for k, v in times.items()}
    base = best["bare ProcessPoolExecutor(1), warm"]
    rows = [[label, fmt(t * 1e3), fmt(size / t / 1e6), fmt(base / t)] for label, t in best.items()]
    rows.append(["phasewise process executor, cold (pool start in the timing)", fmt(cold * 1e3),
                 fmt(size / cold / 1e6), fmt(base / cold)])
    rows.append(["making the array in this process (included in every row)", fmt(make * 1e3),
                 fmt(size / make / 1e6), "-"])
    print(table(["path", f"best of {r} ms", "MB/s (MB = 10^6 B)", "speed vs bare pool"], rows))
    ours = best["phasewise process executor, warm"]
    print()
    print(table(["check", "measured", "target", "verdict"], [
        ["phasewise MB/s vs bare pool", f"{fmt(base / ours)}x ({fmt(size / ours / 1e6)} MB/s)",
         ">= 1.0x", verdict(base / ours >= 1.0)],
        ["… vs the pickle-5 out-of-band floor",
         f"{fmt(best['floor: pickle 5, out-of-band buffers over a Pipe'] / ours)}x",
         "(aim: close to 1)", "-"],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
