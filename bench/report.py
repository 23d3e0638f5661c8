"""Issue 13: ``phasewise report`` on a 10,000-phase run.

A real run of 10,000 no-op phases (bench/scale.py's layered DAG, 100 wide) on
``inline`` with a work directory, then ``write_report`` on it, best of N: target under
2 s, and the HTML under 5 MB. A second run whose every phase prints three captured
lines shows what the hover texts and the click panel's lines add.

    python bench/report.py [--phases 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchutil import best_of, fmt, print_header, table, verdict
from scale import make_phases

from phasewise import Phase, Pipeline
from phasewise.cli.html_report import write_report


def chatty() -> None:
    for i in range(3):
        print(f"line {i} of a phase that talks <&> a little")


def _pipeline(n: int, talk: bool) -> Pipeline:
    phases = make_phases(n, 100)
    if talk:
        phases = [Phase(p.name, chatty, depends_on=p.depends_on, parallel=True)
                  for p in phases]
    return Pipeline("report-bench", *phases, capture_output=talk)


def _measure(root: Path, n: int, talk: bool, repeats: int) -> tuple[float, int, float]:
    place = root / ("talk" if talk else "quiet")
    t0 = time.perf_counter()
    result = _pipeline(n, talk).run(executor="inline", workdir=place)
    ran = time.perf_counter() - t0
    if result.counts.get("completed") != n:
        raise SystemExit(f"the run of {n} phases did not complete: {result.counts}")
    out = root / f"{place.name}.html"
    took = best_of(lambda: (write_report(place, out), None)[1], repeats)
    return took, out.stat().st_size, ran


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print_header("phasewise report (issue 13)", argv)
    root = Path(tempfile.mkdtemp(prefix="phasewise-bench-", dir=os.getcwd()))
    try:
        quiet = _measure(root, args.phases, False, args.repeats)
        talk = _measure(root, args.phases, True, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [(f"{args.phases:,} no-op phases", fmt(quiet[2]), fmt(quiet[0] * 1000),
             fmt(quiet[1] / 1e6)),
            (f"{args.phases:,} phases, 3 captured lines each", fmt(talk[2]),
             fmt(talk[0] * 1000), fmt(talk[1] / 1e6))]
    print(table(("work directory", "the run, s", f"write_report, best of {args.repeats} ms",
                 "HTML, MB (10^6 B)"), rows))
    print()
    checks = [("write_report, no-op phases", f"{fmt(quiet[0])} s", "< 2 s",
               verdict(quiet[0] < 2.0)),
              ("HTML size, no-op phases", f"{fmt(quiet[1] / 1e6)} MB", "< 5 MB",
               verdict(quiet[1] < 5e6)),
              ("write_report, talking phases", f"{fmt(talk[0])} s", "(< 2 s)",
               verdict(talk[0] < 2.0)),
              ("HTML size, talking phases", f"{fmt(talk[1] / 1e6)} MB", "(< 5 MB)",
               verdict(talk[1] < 5e6))]
    print(table(("check", "measured", "target", "verdict"), checks))


if __name__ == "__main__":
    main()
