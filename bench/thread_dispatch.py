"""Issue 2: per-phase cost of the thread executor vs a bare ThreadPoolExecutor.

Fan-out: ``--tasks`` no-op parallel phases (no dependencies) run by
``Pipeline.run(executor="thread", max_workers=W)`` vs a bare
``concurrent.futures.ThreadPoolExecutor(W)`` submitting the same number of no-op calls
and waiting for all. Chain: ``--chain`` phases each depending on the previous vs the
bare pool doing that many sequential ``submit(...).result()`` hops. Both sides create
and shut down their pool inside the timed region. A middle row times phasewise's
``ThreadExecutor`` alone (``submit(Task, emit)`` + wait), without Store, saga runner
or scheduler, to show where the cost sits. A pipeline works out its graph (execution
order, dependency counts, reducer) on its first run and reuses it; the row "first run
of a new Pipeline" shows what that first run costs.

Target (issue 2): fan-out per phase within 3x the bare pool's per task.

    python bench/thread_dispatch.py [--tasks 2000] [--chain 500] [--workers 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait

from benchutil import best_of, fmt, print_header, table, verdict

from phasewise import Phase, Pipeline


def noop() -> None:
    return None


def fan_out(n: int) -> Pipeline:
    return Pipeline("fan", *(Phase(f"p{i}", noop, parallel=True) for i in range(n)))


def chain(n: int) -> Pipeline:
    return Pipeline("chain", *(
        Phase(f"p{i}", noop, depends_on=(f"p{i - 1}",) if i else (), parallel=True)
        for i in range(n)
    ))


def run_pipeline(pipeline: Pipeline, workers: int) -> None:
    result = pipeline.run(executor="thread", max_workers=workers)
    if not result.ok:
        raise SystemExit(f"pipeline failed: {result.counts}")


def bare_fan(n: int, workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        wait([pool.submit(noop) for _ in range(n)])


def bare_chain(n: int, workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(n):
            pool.submit(noop).result()


def executor_fan(n: int, workers: int) -> None:
    from phasewise.core.task import Task
    from phasewise.executors import ThreadExecutor

    ex = ThreadExecutor(max_workers=workers)
    tasks = [Task(f"p{i}", noop) for i in range(n)]
    emit = lambda event: None  # noqa: E731
    try:
        wait([ex.submit(t, emit) for t in tasks])
    finally:
        ex.shutdown()


def executor_chain(n: int, workers: int) -> None:
    from phasewise.core.task import Task
    from phasewise.executors import ThreadExecutor

    ex = ThreadExecutor(max_workers=workers)
    emit = lambda event: None  # noqa: E731
    try:
        for i in range(n):
            ex.submit(Task(f"p{i}", noop), emit).result()
    finally:
        ex.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=2000, help="fan-out phases")
    ap.add_argument("--chain", type=int, default=500, help="chain length")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5, help="best of N (N >= 3)")
    ap.add_argument("--budget", type=float, default=3.0, help="target ratio for the fan-out")
    args = ap.parse_args(argv)
    n, c, w, r = args.tasks, args.chain, args.workers, args.repeats

    print_header(f"thread dispatch: phasewise thread executor vs ThreadPoolExecutor({w})")
    fan, ch = fan_out(n), chain(c)
    run_pipeline(fan, w)  # warm-up: plugin registry, imports
    run_pipeline(ch, w)

    # interleave the contenders so drift hits both alike
    times: dict[str, list[float]] = {k: [] for k in ("pw_fan", "pw_fan_new", "ex_fan",
                                                     "bare_fan", "pw_chain", "ex_chain",
                                                     "bare_chain")}
    for _ in range(r):
        times["bare_fan"].append(best_of(lambda: bare_fan(n, w), 1))
        times["pw_fan"].append(best_of(lambda: run_pipeline(fan, w), 1))
        fresh = fan_out(n)  # built outside the timing; its first run works out the graph
        times["pw_fan_new"].append(best_of(lambda p=fresh: run_pipeline(p, w), 1))
        times["ex_fan"].append(best_of(lambda: executor_fan(n, w), 1))
        times["bare_chain"].append(best_of(lambda: bare_chain(c, w), 1))
        times["pw_chain"].append(best_of(lambda: run_pipeline(ch, w), 1))
        times["ex_chain"].append(best_of(lambda: executor_chain(c, w), 1))
    best = {k: min(v) for k, v in times.items()}

    def us(key: str, count: int) -> float:
        return best[key] / count * 1e6

    rows = [
        [f"fan-out {n:,} no-op phases", "bare ThreadPoolExecutor", fmt(best["bare_fan"] * 1e3),
         fmt(us("bare_fan", n)), "1"],
        ["", "phasewise ThreadExecutor alone", fmt(best["ex_fan"] * 1e3), fmt(us("ex_fan", n)),
         fmt(best["ex_fan"] / best["bare_fan"])],
        ["", "Pipeline.run(executor='thread')", fmt(best["pw_fan"] * 1e3), fmt(us("pw_fan", n)),
         fmt(best["pw_fan"] / best["bare_fan"])],
        ["", "… first run of a new Pipeline", fmt(best["pw_fan_new"] * 1e3),
         fmt(us("pw_fan_new", n)), fmt(best["pw_fan_new"] / best["bare_fan"])],
        [f"chain of {c:,} phases", "bare submit().result() hops",
         fmt(best["bare_chain"] * 1e3), fmt(us("bare_chain", c)), "1"],
        ["", "phasewise ThreadExecutor alone", fmt(best["ex_chain"] * 1e3),
         fmt(us("ex_chain", c)), fmt(best["ex_chain"] / best["bare_chain"])],
        ["", "Pipeline.run(executor='thread')", fmt(best["pw_chain"] * 1e3),
         fmt(us("pw_chain", c)), fmt(best["pw_chain"] / best["bare_chain"])],
    ]
    print(table(["workload", "runner", f"best of {r} ms", "µs per task/hop", "ratio vs bare"],
                rows))
    ratio = best["pw_fan"] / best["bare_fan"]
    print()
    print(table(["check", "measured", "target", "verdict"], [
        [f"fan-out per phase / bare per task (workers={w})", f"{fmt(ratio)}x",
         f"<= {args.budget:g}x", verdict(ratio <= args.budget)],
        ["… first run of a new Pipeline object", f"{fmt(best['pw_fan_new'] / best['bare_fan'])}x",
         "(info)", "-"],
        ["chain per hop / bare per hop", f"{fmt(best['pw_chain'] / best['bare_chain'])}x",
         "(info)", "-"],
    ]))
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    sys.exit(code)
