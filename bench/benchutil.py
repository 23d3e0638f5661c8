"""Shared helpers for the benchmarks in bench/: timing, machine info, markdown tables.

Every benchmark measures phasewise and the raw primitive underneath it *in the same
run*, best of N, and prints a markdown table. Timings never go into tests.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "best_of",
    "fmt",
    "machine_info",
    "median",
    "pct",
    "print_header",
    "registered_executors",
    "require_executors",
    "table",
    "verdict",
    "warm_executor",
]

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], float | None], repeats: int) -> float:
    """Run ``fn`` ``repeats`` times; each call returns its own elapsed seconds (so it
    can leave set-up out) or None to be timed whole. Returns the smallest."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        took = fn()
        if took is None:
            took = time.perf_counter() - start
        times.append(took)
    return min(times)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without scientific notation for
    everyday magnitudes."""
    if value != value:  # NaN
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    rev = out.stdout.strip() or "?"
    return f"{rev}+dirty" if dirty.stdout.strip() else rev


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu": cpu,
        "platform": platform.platform(),
        "commit": _git_rev(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def print_header(title: str, argv: Sequence[str] | None = None) -> None:
    info = machine_info()
    cmd = " ".join(["python", *(argv if argv is not None else sys.argv)])
    print(f"## {title}\n")
    print(f"`{cmd}`\n")
    print(
        f"python {info['python']} · cpu_count {info['cpu_count']} "
        f"(usable {info['usable_cpus']}) · {info['cpu']} · {info['platform']} "
        f"· phasewise @ {info['commit']} · load average {info['load']}\n"
    )
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def registered_executors() -> list[str]:
    from phasewise.plugins.manager import executor_registry

    return executor_registry().names()


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def require_executors(*names: str) -> bool:
    """Print why and return False when an executor these benchmarks need is missing."""
    have = registered_executors()
    missing = [n for n in names if n not in have]
    if missing:
        print(f"SKIPPED: executor(s) {', '.join(missing)} not registered yet "
              f"(registered: {', '.join(have)}). Nothing measured.")
        return False
    return True


class _Reused:
    """Wraps an executor so a run's shutdown leaves it running (for warm measurements)."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    def submit(self, task: Any, emit: Callable[[Any], None]) -> Any:
        return self._executor.submit(task, emit)

    def shutdown(self, cancel: bool = False) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # crosses_processes, …
        return getattr(self._executor, name)


def warm_executor(name: str, max_workers: int, **options: Any) -> tuple[Any, Callable[[], None]]:
    """An executor lookup for ``Pipeline.run(executors=...)`` whose ``name`` executor is
    started once and reused across runs, and a function that shuts it down.

    Every other name resolves through the plugin registry as usual."""
    from phasewise.plugins.manager import lookup_executor

    executor = lookup_executor(name)(max_workers=max_workers, **options)
    reused = _Reused(executor)

    def lookup(wanted: str) -> Any:
        if wanted == name:
            return lambda **_: reused
        return lookup_executor(wanted)

    return lookup, lambda: executor.shutdown()
