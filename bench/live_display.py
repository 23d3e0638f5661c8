"""Issue 13: what the live display costs a run, drawing into a real pseudo-terminal.

Both in one run, contenders interleaved, best of ``--repeats``; a thread drains the
terminal's other side, as a terminal emulator would:

* phases: ``--phases`` no-op phases on ``thread`` with the live display (LiveDisplay)
  vs the same run with ``--progress none`` (the quiet ProgressReporter) on the same
  terminal. Target: at most 1.2x.
* flood: one phase printing ``--lines`` lines, captured, echoed by the live display
  (``--show-output``) vs the same function writing the same lines to the same terminal
  through a line-buffered file (the raw pipe). Target: at least 0.3x its throughput.

    python bench/live_display.py [--phases 2000] [--lines 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import struct
import sys
import termios
import threading
import time
from typing import Any

from benchutil import best_of, fmt, print_header, table, verdict

from phasewise import Phase, Pipeline
from phasewise.plugins.live import LiveDisplay
from phasewise.plugins.manager import plugin_manager
from phasewise.plugins.reporters import ProgressReporter


def noop() -> None:
    return None


class Terminal:
    """A pseudo-terminal of 120x40 whose output is read and thrown away."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.stream = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
        self.read = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.read += len(data)


def timed_run(pipeline: Pipeline, reporter: Any) -> float:
    pm = plugin_manager()
    pm.register(reporter)
    try:
        start = time.perf_counter()
        result = pipeline.run(executor="thread")
        took = time.perf_counter() - start
    finally:
        pm.unregister(reporter)
    assert result.ok
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", type=int, default=2000)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print_header("live_display.py — the live display into a pseudo-terminal",
                 argv if argv is not None else sys.argv)
    terminal = Terminal()
    tty = terminal.stream
    lines = args.lines

    many = Pipeline("many", *(Phase(f"p{i}", noop) for i in range(args.phases)))
    timed_run(many, ProgressReporter(tty, quiet=True))  # warm
    quiet = live = float("inf")
    for _ in range(args.repeats):
        quiet = min(quiet, timed_run(many, ProgressReporter(tty, quiet=True)))
        live = min(live, timed_run(many, LiveDisplay(tty)))

    def flood() -> int:
        for i in range(lines):
            print(f"line {i} of the flood, as a build tool would print it")
        return lines

    def raw() -> float | None:
        saved, sys.stdout = sys.stdout, tty
        try:
            flood()
        finally:
            sys.stdout = saved
        return None

    flooding = Pipeline("flood", Phase("flood", flood), capture_output=True)
    echoed = min(timed_run(flooding, LiveDisplay(tty, show_output=True))
                 for _ in range(args.repeats))
    bare = best_of(raw, args.repeats)

    rows = [
        [f"{args.phases:,} no-op phases, thread", "--progress none", fmt(quiet), "1"],
        ["", "live display", fmt(live), fmt(live / quiet)],
        [f"{lines:,} lines, one phase", "raw line-buffered writes", fmt(bare), "1"],
        ["", "live display --show-output", fmt(echoed), fmt(bare / echoed)],
    ]
    print(table(["run", "contender", "best (s)", "ratio"], rows))
    print(f"\nlive display vs --progress none: {fmt(live / quiet)}x "
          f"({verdict(live / quiet <= 1.2)} against ≤ 1.2x); flood throughput "
          f"{fmt(bare / echoed)}x the raw writes ({verdict(bare / echoed >= 0.3)} against "
          f"≥ 0.3x); {terminal.read:,} bytes reached the terminal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
