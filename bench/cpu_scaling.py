"""Issue 3: CPU-bound phases on every core — ``process -j 2`` vs inline vs a bare pool.

``--phases`` independent phases, each a pure-Python loop calibrated at start-up to take
``--seconds`` in this process. Timed (each best of ``--repeats``, pools started and
shut down inside the timed region on every side):

* ``Pipeline.run(executor="inline")`` — one after another;
* ``Pipeline.run(executor="process", max_workers=J)``;
* a bare ``concurrent.futures.ProcessPoolExecutor(J)`` mapping the same function
  (default start method, and forkserver like phasewise's default, for reference);
* diagnostic: the process executor started once and reused across runs, which shows
  what pool start-up and shutdown cost per run.

Targets (issue 3): process >= 1.9x inline, and >= 0.97x the bare pool.

    python bench/cpu_scaling.py [--phases 8] [--seconds 0.5] [-j 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from benchutil import best_of, fmt, print_header, require_executors, table, verdict, warm_executor


def burn(n: int) -> int:
    """Pure-Python CPU work: about ``n`` loop iterations."""
    x = 0
    for i in range(n):
        x = (x + i * i) % 1_000_003
    return x


def calibrate(seconds: float) -> int:
    n = 200_000
    while True:
        t0 = time.perf_counter()
        burn(n)
        took = time.perf_counter() - t0
        if took > 0.1:
            break
        n *= 2
    # best of three at the estimated size, then rescale once
    n = int(n * seconds / took)
    took = min(_time(burn, n) for _ in range(3))
    return max(1, int(n * seconds / took))


def _time(fn: object, *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per phase")
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (N >= 3)")
    ap.add_argument("--start-method", default=None,
                    help="phasewise process executor's start_method (default: its own)")
    ap.add_argument("--no-forkserver-pool", action="store_true",
                    help="skip the reference bare pool on forkserver")
    args = ap.parse_args(argv)

    print_header(f"cpu scaling: {args.phases} CPU-bound phases, process -j {args.workers} "
                 "vs inline vs ProcessPoolExecutor")
    if not require_executors("process"):
        return 0
    from phasewise import Phase, Pipeline

    n = calibrate(args.seconds)
    one = min(_time(burn, n) for _ in range(2))
    print(f"calibrated: burn({n:,}) takes {one:.3f} s here; "
          f"{args.phases} phases = {one * args.phases:.2f} CPU s\n")
    sys.stdout.flush()
    values = [burn(n)] * args.phases

    pipeline = Pipeline("cpu", *(
        Phase(f"burn{i}", functools.partial(burn, n), parallel=True)
        for i in range(args.phases)
    ))
    options = {"start_method": args.start_method} if args.start_method else None

    def run(executor: str, lookup: object = None) -> None:
        result = pipeline.run(executor=executor, max_workers=args.workers,
                              executor_options=options if executor == "process" else None,
                              executors=lookup)  # type: ignore[arg-type]
        if not result.ok or sorted(result.results.values()) != values:
            raise SystemExit(f"{executor} run failed: {result.counts}")

    def bare(method: str | None) -> None:
        ctx = multiprocessing.get_context(method)
        with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
            out = list(pool.map(burn, [n] * args.phases))
        if out != values:
            raise SystemExit("bare pool returned wrong values")

    def warm_run() -> float:
        # the pool is started, and warmed up, outside the timing; it must not outlive this
        # contender: a live pool keeps phasewise's forkserver running for the others
        lookup, close = warm_executor("process", args.workers, **(options or {}))
        try:
            warm_up = Pipeline("up", *(Phase(f"u{i}", functools.partial(burn, 1), parallel=True)
                                       for i in range(2 * args.workers)))
            warm_up.run(executor="process", max_workers=args.workers, executors=lookup)
            t0 = time.perf_counter()
            run("process", lookup)
            return time.perf_counter() - t0
        finally:
            close()

    default_method = multiprocessing.get_start_method()
    contenders: dict[str, object] = {
        "inline": lambda: run("inline"),
        f"process -j {args.workers}": lambda: run("process"),
        f"process -j {args.workers}, pool kept warm across runs (diagnostic)": warm_run,
        f"bare ProcessPoolExecutor({args.workers}) [{default_method}]": lambda: bare(None),
    }
    if not args.no_forkserver_pool and default_method != "forkserver":
        contenders[f"bare ProcessPoolExecutor({args.workers}) [forkserver]"] = (
            lambda: bare("forkserver"))
    run("process")  # warm-up: imports, plugin registry, page cache
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.repeats):  # interleaved, so drift hits every contender alike
        for label, fn in contenders.items():
            times[label].append(best_of(fn, 1))  # type: ignore[arg-type]
    best = {k: min(v) for k, v in times.items()}

    inline = best["inline"]
    proc = best[f"process -j {args.workers}"]
    bare_key = f"bare ProcessPoolExecutor({args.workers}) [{default_method}]"
    rows = [[label, fmt(t), fmt(inline / t), fmt(best[bare_key] / t)]
            for label, t in best.items()]
    print(table(["runner", f"best of {args.repeats} s", "speed-up vs inline",
                 "speed vs bare pool (bare / this)"], rows))
    print()
    print(table(["check", "measured", "target", "verdict"], [
        [f"process -j {args.workers} vs inline", f"{fmt(inline / proc)}x", ">= 1.9x",
         verdict(inline / proc >= 1.9)],
        [f"process -j {args.workers} vs bare pool ({default_method})",
         f"{fmt(best[bare_key] / proc)}x", ">= 0.97x", verdict(best[bare_key] / proc >= 0.97)],
        ["ideal speed-up on this machine", f"{min(args.workers, os.cpu_count() or 1)}x", "-", "-"],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
