"""The conformance suite's handlers: module-level functions of an importable module, so
that cloudpickle sends them by reference and a worker anywhere phasewise is installed
unpickles them by importing this module, as it would a user's.

Tests bind them to their arguments with ``functools.partial``. Phases coordinate through
files (a file exists or not, in any process on the machine), never through timing; every
wait is bounded by ``WAIT_LIMIT`` seconds.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = [
    "WAIT_LIMIT",
    "Columns",
    "chatter",
    "column_sums",
    "const",
    "count_to",
    "dataflow_b",
    "dataflow_c",
    "echo_context",
    "events",
    "fail",
    "fail_after",
    "flaky",
    "hang_until",
    "live_line",
    "make_columns",
    "passthrough",
    "pattern",
    "raises_from_a_helper",
    "reads_a_missing_dependency",
    "record",
    "rendezvous",
    "sleep_then",
    "span",
    "talk",
    "touch",
    "wait_for",
    "where",
]

WAIT_LIMIT = 10.0
"""The longest any handler waits for another phase's sign (seconds)."""


# ── coordination through files ──────────────────────────────────────────────


def touch(path: str) -> None:
    Path(path).touch()


def wait_for(path: str, limit: float = WAIT_LIMIT) -> bool:
    """Wait until ``path`` exists: True, or False after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def record(log: str, text: str) -> None:
    """Append one line atomically (O_APPEND), from any thread or process."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def events(log: Path) -> list[tuple[str, str]]:
    """The ``(kind, name)`` lines ``record`` appended to ``log``, in order."""
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]


# ── values ──────────────────────────────────────────────────────────────────


def const(value: Any) -> Any:
    return value


def sleep_then(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def fail(message: str) -> None:
    raise ValueError(message)


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 for i in range(251)) * (size // 251) + b"z" * (size % 251)


class Columns:
    """Pickles (protocol 5) its columns as out-of-band buffers, as numpy arrays do."""

    def __init__(self, *columns: Any) -> None:
        self.columns = columns

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Columns, tuple(pickle.PickleBuffer(c) for c in self.columns)


def make_columns(*sizes: int) -> Columns:
    return Columns(*(bytearray(pattern(size, seed)) for seed, size in enumerate(sizes)))


def column_sums(context: dict[str, Any]) -> list[int]:
    return [sum(memoryview(c)) for c in context["columns"].columns]


def echo_context(context: dict[str, Any]) -> dict[str, Any]:
    return dict(context)


def reads_a_missing_dependency(context: dict[str, Any]) -> Any:
    return context["hash_all"]


def raises_from_a_helper() -> None:
    _helper_that_raises()


def _helper_that_raises() -> None:
    raise LookupError("deep in the user's code")


def where() -> tuple[int, int]:
    """Where it ran: the process id and the thread's ident."""
    return os.getpid(), threading.get_ident()


# ── scheduling ──────────────────────────────────────────────────────────────


def span(log: str, name: str, pause: float = 0.01) -> str:
    record(log, f"start {name}")
    time.sleep(pause)  # widen the window in which an overlap would show
    record(log, f"end {name}")
    return name


def rendezvous(mine: str, other: str) -> bool:
    """Announce this phase, then wait for the other one: True only if both ran at once."""
    touch(mine)
    return wait_for(other)


def dataflow_b(flags: str) -> bool:
    touch(os.path.join(flags, "b_started"))
    return os.path.exists(os.path.join(flags, "c_done"))


def dataflow_c(flags: str) -> bool:
    saw_b = wait_for(os.path.join(flags, "b_started"))
    touch(os.path.join(flags, "c_done"))
    return saw_b


def flaky(counter: str, fail_times: int) -> int:
    record(counter, "attempt")
    attempt = len(Path(counter).read_text().splitlines())
    if attempt <= fail_times:
        raise OSError(f"attempt {attempt}")
    return attempt


def fail_after(wait: str, announce: str | None, message: str) -> None:
    wait_for(wait)
    if announce:
        touch(announce)
    raise RuntimeError(message)


def hang_until(started: str | None, release: str, limit: float = WAIT_LIMIT) -> str:
    if started:
        touch(started)
    wait_for(release, limit)
    return "finished"


# ── output ──────────────────────────────────────────────────────────────────


def chatter(n: int) -> int:
    for i in range(n):
        print(f"out {i}")
        print(f"err {i}", file=sys.stderr)
    return n


def live_line(flag: str) -> bool:
    print("first", flush=True)
    seen = wait_for(flag)
    print("second")
    return seen


def talk(mine: str | None, other: str | None, tag: str, n: int) -> None:
    if mine and other:
        touch(mine)
        wait_for(other)
    for i in range(n):
        print(f"{tag} {i}")
        if i % 20 == 0:
            time.sleep(0.001)  # let the other phase interleave


def count_to(n: int) -> None:
    for i in range(n):
        print(f"line {i}")


def passthrough(tag: str) -> str:
    print(f"stdout-{tag}", flush=True)
    print(f"stderr-{tag}", file=sys.stderr, flush=True)
    return tag
