"""Issue 3: per-phase dispatch cost of the process and subprocess executors.

Measured in one run, each best of ``--repeats``, contenders interleaved:

* fan-out: ``--tasks`` no-op parallel phases on ``process`` (``-j``) vs a bare
  ``concurrent.futures.ProcessPoolExecutor(j)`` submitting as many no-op calls and
  waiting for all — per task;
* chain: ``--chain`` phases each depending on the previous vs the bare pool's hop
  (submit, result, submit the next) — per hop;
* subprocess: ``--spawns`` chained phases on ``subprocess`` vs as many bare
  ``subprocess.run([python, "-c", "import cloudpickle, msgspec"])`` — per phase.

"cold" rows start and shut down the pool inside the timed region on both sides (what
``Pipeline.run`` does); "warm" rows reuse a pool started beforehand on both sides, so
they show dispatch alone.

Targets (issue 3): fan-out and chain ratios <= 1.0 vs the bare pool; subprocess
<= 1.2x a bare spawn.

    python bench/dispatch.py [--tasks 2000] [--chain 500] [--spawns 30] [-j 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait

from benchutil import best_of, fmt, print_header, require_executors, table, verdict, warm_executor


def noop(*_: object) -> None:
    return None


def compile_like_an_install() -> None:
    """Byte-compile phasewise's modules, as ``pip install`` does for a regular install.

    The bare contender's modules (cloudpickle, msgspec) were compiled when pip installed
    them. An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (as on this machine)
    would otherwise compile phasewise's modules from source in every worker."""
    import compileall

    import phasewise

    compileall.compile_dir(os.path.dirname(phasewise.__file__), quiet=1)
    print("(phasewise's modules byte-compiled first, as a regular pip install does)\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=2000, help="fan-out phases")
    ap.add_argument("--chain", type=int, default=500, help="chain length")
    ap.add_argument("--spawns", type=int, default=30, help="subprocess phases")
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (N >= 3)")
    ap.add_argument("--start-method", default=None,
                    help="phasewise process executor's start_method (default: its own)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fan", "chain", "subprocess"])
    args = ap.parse_args(argv)
    n, c, s, w, r = args.tasks, args.chain, args.spawns, args.workers, args.repeats

    print_header(f"dispatch: process -j {w} vs ProcessPoolExecutor({w}); "
                 "subprocess vs a bare interpreter spawn")
    if not require_executors("process", "subprocess"):
        return 0
    from phasewise import Phase, Pipeline

    options = {"start_method": args.start_method} if args.start_method else {}
    fan = Pipeline("fan", *(Phase(f"p{i}", noop, parallel=True) for i in range(n)))
    chain = Pipeline("chain", *(
        Phase(f"p{i}", noop, depends_on=(f"p{i - 1}",) if i else (), parallel=True)
        for i in range(c)))
    spawn_chain = Pipeline("spawns", *(
        Phase(f"p{i}", noop, depends_on=(f"p{i - 1}",) if i else ()) for i in range(s)))
    warm: dict[str, object] = {}  # "lookup" and "pool" while a warm round is on

    def run(pipeline: Pipeline, executor: str = "process", hot: bool = False) -> None:
        result = pipeline.run(executor=executor, max_workers=w,
                              executor_options=options if executor == "process" else None,
                              executors=warm["lookup"] if hot else None)  # type: ignore[arg-type]
        if not result.ok:
            raise SystemExit(f"{pipeline.name} on {executor} failed: {result.counts}")

    def bare_fan(pool: ProcessPoolExecutor | None) -> None:
        if pool is None:
            with ProcessPoolExecutor(w) as cold:
                wait([cold.submit(noop) for _ in range(n)])
        else:
            wait([pool.submit(noop) for _ in range(n)])

    def bare_chain(pool: ProcessPoolExecutor | None) -> None:
        if pool is None:
            with ProcessPoolExecutor(w) as cold:
                for _ in range(c):
                    cold.submit(noop).result()
        else:
            for _ in range(c):
                pool.submit(noop).result()

    def bare_spawns() -> None:
        for _ in range(s):
            subprocess.run([sys.executable, "-c", "import cloudpickle, msgspec"], check=True)

    def pool() -> ProcessPoolExecutor:
        return warm["pool"]  # type: ignore[return-value]

    method = multiprocessing.get_start_method()
    bare = f"bare ProcessPoolExecutor({w}) [{method}]"
    groups: dict[str, tuple[int, dict[str, Callable[[], None]]]] = {}
    if "fan" not in args.skip:
        groups[f"fan-out {n:,} no-op phases"] = (n, {
            f"{bare}, cold": lambda: bare_fan(None),
            f"process -j {w}, cold": lambda: run(fan),
            f"{bare}, warm": lambda: bare_fan(pool()),
            f"process -j {w}, warm": lambda: run(fan, hot=True),
        })
    if "chain" not in args.skip:
        groups[f"chain of {c:,} phases (per hop)"] = (c, {
            f"{bare}, cold": lambda: bare_chain(None),
            f"process -j {w}, cold": lambda: run(chain),
            f"{bare}, warm": lambda: bare_chain(pool()),
            f"process -j {w}, warm": lambda: run(chain, hot=True),
        })
    if "subprocess" not in args.skip:
        compile_like_an_install()
        groups[f"{s} phases, one interpreter each"] = (s, {
            "bare subprocess.run(python -c 'import cloudpickle, msgspec')": bare_spawns,
            "subprocess executor": lambda: run(spawn_chain, "subprocess"),
        })

    def one_round(timed: bool) -> None:
        # cold contenders first, with no pool of ours alive (a live pool would keep
        # phasewise's forkserver running and make "cold" look warm) …
        for g, (_, contenders) in groups.items():
            for label, fn in contenders.items():
                if not label.endswith("warm"):
                    took = best_of(fn, 1)
                    if timed:
                        times[(g, label)].append(took)
        # … then warm ones, on pools started (and warmed up) outside the timing. The bare
        # pool forks its workers before phasewise starts its forkserver, and is shut down
        # first: fork()ed children inherit the forkserver's keep-alive pipe, and
        # ProcessExecutor.shutdown() blocks until every such child has exited.
        warm["pool"] = ProcessPoolExecutor(w)
        wait([pool().submit(noop) for _ in range(4 * w)])
        lookup, close = warm_executor("process", w, **options)
        warm["lookup"] = lookup
        try:
            run(Pipeline("up", *(Phase(f"u{i}", noop, parallel=True) for i in range(4 * w))),
                hot=True)
            for g, (_, contenders) in groups.items():
                for label, fn in contenders.items():
                    if label.endswith("warm"):
                        took = best_of(fn, 1)
                        if timed:
                            times[(g, label)].append(took)
        finally:
            pool().shutdown()
            close()
            warm.clear()

    times: dict[tuple[str, str], list[float]] = {
        (g, k): [] for g, (_, cs) in groups.items() for k in cs}
    one_round(timed=False)  # warm-up: imports, page cache
    for _ in range(r):
        one_round(timed=True)
    best = {k: min(v) for k, v in times.items()}

    rows, checks = [], []
    for g, (count, contenders) in groups.items():
        labels = list(contenders)
        for i, label in enumerate(labels):
            ours = not label.startswith("bare")
            base = best[(g, labels[i - 1])] if ours else best[(g, label)]
            ratio = best[(g, label)] / base
            rows.append([g if i == 0 else "", label, fmt(best[(g, label)] * 1e3),
                         fmt(best[(g, label)] / count * 1e6), fmt(ratio) if ours else "1"])
            if ours:
                budget = 1.2 if "subprocess" in label else 1.0
                kind = "cold" if "cold" in label else ("warm" if "warm" in label else "")
                checks.append([f"{g}: {label.split(',')[0]} {kind}".strip(),
                               f"{fmt(ratio)}x", f"<= {budget:g}x", verdict(ratio <= budget)])
    print(table(["workload", "runner", f"best of {r} ms", "µs per phase/hop",
                 "ratio vs bare (row above)"], rows))
    print()
    print(table(["check", "measured", "target", "verdict"], checks))
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    sys.exit(code)
