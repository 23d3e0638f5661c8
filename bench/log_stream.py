"""Issue 3: live log streaming from a process worker into the parent's Store.

Throughput: one phase prints ``--lines`` lines of ~60 bytes with ``capture_output=True``
on the ``process`` executor; a Store subclass counts the ``@@PHASE_LOG`` actions as
they are dispatched (after the reducer has applied them) and notes when the first and
the last arrive. The raw reference, in the same run: a child ``python`` printing the
same lines with line-buffered stdout into a pipe, the parent reading
``for line in proc.stdout``. Lines/s are taken from the first line's arrival to the
last's (start-up excluded on both sides); whole-run figures are shown too.

Latency: a phase prints ``time.monotonic()`` (CLOCK_MONOTONIC, system-wide on Linux)
every ``--interval`` seconds, ``--latency-lines`` times; the parent notes
``time.monotonic()`` when the matching ``@@PHASE_LOG`` has been dispatched to the
Store. Same for the raw pipe.

Targets (issue 3): Store lines/s >= 0.4x the raw pipe read; latency p99 <= 2 ms.

    python bench/log_stream.py [--lines 200000] [--repeats 3] [--latency-lines 200]
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import time
from typing import Any

from benchutil import fmt, pct, print_header, require_executors, table, verdict

PAD = "x" * 51  # "%08d " + PAD = 60 characters, 61 bytes with the newline


def flood(n: int) -> None:
    for i in range(n):
        print(f"{i:08d} {PAD}")


def ticker(n: int, interval: float) -> None:
    for _ in range(n):
        print(f"{time.monotonic():.9f}")
        time.sleep(interval)


RAW_FLOOD = f"""
import sys
sys.stdout.reconfigure(line_buffering=sys.argv[2] == "line")
PAD = {PAD!r}
for i in range(int(sys.argv[1])):
    print(f"{{i:08d}} {{PAD}}")
"""

RAW_TICKER = """
import sys, time
sys.stdout.reconfigure(line_buffering=True)
for _ in range(int(sys.argv[1])):
    print(f"{time.monotonic():.9f}")
    time.sleep(float(sys.argv[2]))
"""


def make_store_class() -> Any:
    from phasewise import Store
    from phasewise.core.actions import PHASE_LOG

    class LogClockStore(Store):
        """Notes when each @@PHASE_LOG has reached the Store (after the reducer)."""

        def __init__(self, reducer: Any) -> None:
            super().__init__(reducer)
            self.count = 0
            self.first = self.last = 0.0
            self.lines: list[tuple[float, str]] | None = None  # (arrival, line) if wanted

        def dispatch(self, action: Any) -> None:
            super().dispatch(action)
            if action.type == PHASE_LOG:
                now = time.monotonic()
                if not self.count:
                    self.first = now
                self.count += 1
                self.last = now
                if self.lines is not None:
                    self.lines.append((now, action.payload["line"]))

    return LogClockStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3, help="best of N (N >= 3)")
    ap.add_argument("--latency-lines", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between lines")
    ap.add_argument("--latency-runs", type=int, default=1,
                    help="latency runs per side (samples are pooled)")
    args = ap.parse_args(argv)
    n = args.lines

    print_header("log stream: captured lines from a process worker into the Store "
                 "vs a raw pipe read")
    if not require_executors("process"):
        return 0
    from phasewise import Phase, Pipeline

    store_class = make_store_class()
    flood_pipe = Pipeline("flood", Phase("flood", functools.partial(flood, n)),
                          capture_output=True)
    tick_pipe = Pipeline("tick", Phase("tick", functools.partial(
        ticker, args.latency_lines, args.interval)), capture_output=True)

    def phasewise_flood() -> dict[str, float]:
        store = store_class(flood_pipe.build_reducer())
        t0 = time.monotonic()
        result = flood_pipe.run(executor="process", max_workers=1, store=store)
        t1 = time.monotonic()
        if not result.ok:
            raise SystemExit(f"flood failed: {result.counts}")
        logs = result.state.phase("flood").logs
        if store.count != n or not logs or logs[-1].line != f"{n - 1:08d} {PAD}":
            raise SystemExit(f"Store saw {store.count} of {n} lines")
        return {"stream": store.last - store.first, "whole": t1 - t0}

    def raw_flood(buffering: str = "line") -> dict[str, float]:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", RAW_FLOOD, str(n), buffering],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        count, first = 0, 0.0
        for _line in proc.stdout:
            if not count:
                first = time.monotonic()
            count += 1
        last = time.monotonic()
        proc.wait()
        if count != n:
            raise SystemExit(f"raw pipe read {count} of {n} lines")
        return {"stream": last - first, "whole": time.monotonic() - t0}

    phasewise_flood()  # warm-up
    raw_flood()
    results: dict[str, list[dict[str, float]]] = {"phasewise": [], "raw": [], "block": []}
    for _ in range(args.repeats):
        results["raw"].append(raw_flood())
        results["block"].append(raw_flood("block"))
        results["phasewise"].append(phasewise_flood())
    best = {k: {m: min(r[m] for r in v) for m in ("stream", "whole")}
            for k, v in results.items()}
    rate = {k: n / v["stream"] for k, v in best.items()}
    whole = {k: n / v["whole"] for k, v in best.items()}
    print(table(
        ["path", f"lines/s, first to last line (best of {args.repeats})",
         "lines/s, whole run incl. start-up", "MB/s (first to last)", "ratio vs raw"],
        [
            ["raw pipe, child line-buffered (like a worker), `for line in proc.stdout`",
             fmt(rate["raw"]), fmt(whole["raw"]), fmt(rate["raw"] * 61 / 1e6), "1"],
            ["raw pipe, child block-buffered (the reader's ceiling)", fmt(rate["block"]),
             fmt(whole["block"]), fmt(rate["block"] * 61 / 1e6),
             fmt(rate["block"] / rate["raw"])],
            ["process worker → fd capture → frames → Store (@@PHASE_LOG)",
             fmt(rate["phasewise"]), fmt(whole["phasewise"]),
             fmt(rate["phasewise"] * 61 / 1e6), fmt(rate["phasewise"] / rate["raw"])],
        ],
    ))
    sys.stdout.flush()

    # latency
    def phasewise_latency() -> list[float]:
        store = store_class(tick_pipe.build_reducer())
        store.lines = []
        result = tick_pipe.run(executor="process", max_workers=1, store=store)
        if not result.ok:
            raise SystemExit(f"ticker failed: {result.counts}")
        return [arrival - float(line) for arrival, line in store.lines]

    def raw_latency() -> list[float]:
        proc = subprocess.Popen(
            [sys.executable, "-c", RAW_TICKER, str(args.latency_lines), str(args.interval)],
            stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        out = [time.monotonic() - float(line) for line in proc.stdout]
        proc.wait()
        return out

    lat: dict[str, list[float]] = {"phasewise": [], "raw": []}
    for _ in range(args.latency_runs):
        lat["raw"] += raw_latency()
        lat["phasewise"] += phasewise_latency()
    print()
    rows = []
    for label, key in (("raw line-buffered pipe", "raw"),
                       ("print in worker → @@PHASE_LOG in Store", "phasewise")):
        ms = [x * 1e3 for x in lat[key]]
        rows.append([label, str(len(ms)), fmt(pct(ms, 50)), fmt(pct(ms, 90)), fmt(pct(ms, 99)),
                     fmt(max(ms))])
    print(table(["latency, a line every "
                 f"{args.interval * 1e3:g} ms", "lines", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                rows))
    p99 = pct([x * 1e3 for x in lat["phasewise"]], 99)
    ratio = rate["phasewise"] / rate["raw"]
    print()
    print(table(["check", "measured", "target", "verdict"], [
        ["Store lines/s vs raw pipe read (line-buffered child)",
         f"{fmt(ratio)}x ({fmt(rate['phasewise'])} lines/s)", ">= 0.4x", verdict(ratio >= 0.4)],
        ["… vs raw pipe read (block-buffered child)",
         f"{fmt(rate['phasewise'] / rate['block'])}x", ">= 0.4x",
         verdict(rate["phasewise"] / rate["block"] >= 0.4)],
        ["latency p99, print → Store", f"{fmt(p99)} ms", "<= 2 ms", verdict(p99 <= 2)],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
