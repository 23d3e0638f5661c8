"""NiceExecutor: phasewise's process pool, its workers niced and pinned to chosen cores.

    parent: NiceExecutor(nice=10, cpus="0-1")   checks both here, where a mistake is a
            │                                   usage error before anything runs
            └─ ProcessExecutor(initializer=lower_priority, initargs=(10, {0, 1}))
    worker: lower_priority(10, {0, 1})           os.nice(10); os.sched_setaffinity(0, {0, 1})
            then takes tasks as any pool worker  (the handler, and any process it starts,
                                                 inherits both)

Built on phasewise's public executor API only: ``ProcessExecutor`` and its
``initializer`` do the work, so scheduling, live output, cancellation, crash isolation
and timeouts are the built-in pool's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from phasewise.executors import ProcessExecutor

__all__ = ["MAX_NICE", "NiceExecutor", "lower_priority", "parse_cpus"]

MAX_NICE = 19
"""The lowest priority there is (``nice -n 19``)."""


def lower_priority(nice: int, cpus: frozenset[int] | None) -> None:
    """Run in each worker as it starts: add ``nice`` to its niceness, pin it to ``cpus``."""
    if nice:
        os.nice(nice)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def _check_nice(nice: object) -> int:
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= MAX_NICE:
        raise ValueError(f"nice must be a whole number from 0 to {MAX_NICE} (it can only "
                         f"lower the priority), got {nice!r}")
    return nice


def _allowed() -> set[int]:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None or not hasattr(os, "sched_setaffinity"):
        raise ValueError("cpus= needs os.sched_setaffinity, which this platform lacks")
    return set(getter(0))


def _numbers(spec: object) -> Iterable[int]:
    """The CPU numbers ``spec`` names: 0, "0,2-3", [0, 2]."""
    if isinstance(spec, bool):
        raise ValueError(f"cpus must name CPU numbers, got {spec!r}")
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, str):
        numbers: list[int] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            first, dash, last = part.partition("-")
            try:
                low, high = int(first), int(last) if dash else int(first)
            except ValueError:
                raise ValueError(f"cpus: {part!r} is not a CPU number or a range like "
                                 f"0-3") from None
            if high < low:
                raise ValueError(f"cpus: the range {part!r} runs backwards")
            numbers.extend(range(low, high + 1))
        return numbers
    if isinstance(spec, (list, tuple, set, frozenset)):
        return [n for item in spec for n in _numbers(item)]
    raise ValueError(f"cpus must be a CPU number, a list of them, or a string like "
                     f"'0,2-3', got {type(spec).__name__}")


def parse_cpus(spec: object) -> frozenset[int] | None:
    """The set of CPUs ``spec`` names (None: no pinning), each one this process may use."""
    if spec is None:
        return None
    cpus = frozenset(_numbers(spec))
    if not cpus:
        raise ValueError("cpus names no CPU")
    allowed = _allowed()
    missing = sorted(cpus - allowed)
    if missing:
        raise ValueError(f"cpus: CPU {', '.join(map(str, missing))} is not available here "
                         f"(this process may use {', '.join(map(str, sorted(allowed)))})")
    return cpus


class NiceExecutor(ProcessExecutor):
    """A process pool whose workers run at a lower CPU priority (``nice``, added to this
    process's niceness, as ``nice -n`` does), pinned to ``cpus`` (default: the CPUs this
    process may use). Other options are ``ProcessExecutor``'s: ``start_method``,
    ``kill_grace``."""

    def __init__(self, max_workers: int | None = None, nice: int = 10,
                 cpus: object = None, start_method: str = "auto",
                 kill_grace: float = 0.5) -> None:
        self.nice = _check_nice(nice)
        self.cpus = parse_cpus(cpus)
        super().__init__(max_workers, start_method=start_method, kill_grace=kill_grace,
                         initializer=lower_priority, initargs=(self.nice, self.cpus))
