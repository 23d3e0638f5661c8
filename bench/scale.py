"""Issue 2: how the scheduler, saga runner and reducer scale with the number of phases.

A layered DAG of no-op handlers: levels of ``--width`` parallel phases, each phase
depending on two phases of the level before. Run on the ``inline`` executor via
``Pipeline(...).run(executor="inline")`` at 1,000 and 10,000 phases (``--sizes``).

Reported per size: building the ``Phase`` objects, ``Pipeline(...)`` construction
(validation), the run, and the raw primitive underneath — calling the same handlers in
execution order in a plain loop. Targets (issue 2): 10k phases run in < 3 s and take at
most 12x as long as 1k.

    python bench/scale.py [--sizes 1000 10000] [--width 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time

from benchutil import best_of, fmt, print_header, table, verdict

from phasewise import Phase, Pipeline


def noop() -> None:
    return None


def make_phases(n: int, width: int) -> list[Phase]:
    phases: list[Phase] = []
    prev: list[str] = []
    for i in range(n):
        level, col = divmod(i, width)
        name = f"p{level}_{col}"
        if level == 0:
            deps: tuple[str, ...] = ()
        else:
            k = len(prev)
            deps = (prev[col % k], prev[(col + 1) % k]) if k > 1 else (prev[0],)
        phases.append(Phase(name, noop, depends_on=deps, parallel=True))
        if col == width - 1 or i == n - 1:
            prev = [p.name for p in phases[level * width :]]
    return phases


def measure(n: int, width: int, repeats: int, max_workers: int | None) -> dict[str, float]:
    phases = make_phases(n, width)
    pipeline = Pipeline("scale", *phases)
    check = pipeline.run(executor="inline", max_workers=max_workers)  # warm-up + sanity
    if not check.ok or check.counts.get("completed") != n:
        raise SystemExit(f"run of {n} phases did not complete: {check.counts}")

    def build_phases() -> None:
        make_phases(n, width)

    def build_pipeline() -> float:
        t0 = time.perf_counter()
        Pipeline("scale", *phases)
        return time.perf_counter() - t0

    def run() -> None:
        pipeline.run(executor="inline", max_workers=max_workers)

    order = [pipeline.phase(name).handler for name in pipeline.execution_order()]

    def raw() -> None:
        for handler in order:
            handler()

    return {
        "phases": best_of(build_phases, repeats),
        "pipeline": best_of(build_pipeline, repeats),
        "run": best_of(run, repeats),
        "raw": best_of(raw, repeats),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--width", type=int, default=100, help="phases per level")
    ap.add_argument("--repeats", type=int, default=3, help="best of N (N >= 3)")
    ap.add_argument("--max-workers", type=int, default=None,
                    help="Pipeline.run(max_workers=...); default: phasewise's (cpu count)")
    args = ap.parse_args(argv)

    print_header("scale: layered DAG of no-op phases, inline executor")
    results = {n: measure(n, args.width, args.repeats, args.max_workers) for n in args.sizes}
    rows = []
    for n, r in results.items():
        rows.append([
            f"{n:,}", fmt(r["phases"] * 1e3), fmt(r["pipeline"] * 1e3), fmt(r["run"]),
            fmt(r["run"] / n * 1e6), fmt(r["raw"] / n * 1e6), fmt(r["run"] / r["raw"]),
        ])
    print(table(
        ["phases", "Phase objects ms", "Pipeline() ms", "run s", "run µs/phase",
         "raw loop µs/phase", "run / raw"],
        rows,
    ))
    small, large = min(results), max(results)
    if small != large:
        ratio = results[large]["run"] / results[small]["run"]
        size_ratio = large / small
        target_ratio = 12 * size_ratio / 10
        big = results[large]["run"]
        print()
        print(table(
            ["check", "measured", "target", "verdict"],
            [
                [f"run of {large:,} phases", f"{fmt(big)} s", "< 3 s" if large == 10000 else "-",
                 verdict(big < 3) if large == 10000 else "-"],
                [f"run {large:,} / run {small:,}", f"{fmt(ratio)}x",
                 f"<= {fmt(target_ratio)}x", verdict(ratio <= target_ratio)],
                [f"Pipeline() {large:,} / {small:,}",
                 f"{fmt(results[large]['pipeline'] / results[small]['pipeline'])}x",
                 f"~{fmt(size_ratio)}x (linear)", "-"],
            ],
        ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
