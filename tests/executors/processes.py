"""Finding the processes a test started, through /proc, so that executor tests can check
that nothing is left running afterwards (the ``no_process_left`` fixture, conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

MARK = "PHASEWISE_TEST_MARK"
REAP_SECONDS = 5.0



def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, session)`` of ``pid``, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid`` (zombies included)."""
    children: dict[int, list[int]] = {}
    for p in all_pids():
        st = proc_stat(p)
        if st is not None:
            children.setdefault(st[1], []).append(p)
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def marked(token: str) -> set[int]:
    """Processes whose environment carries ``MARK=token`` (orphans included)."""
    needle = f"{MARK}={token}".encode()
    found = set()
    for p in all_pids():
        try:
            environ = Path(f"/proc/{p}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(p)
    return found - {os.getpid()}


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` still running, or dead but never reaped by this process.

    An exited process whose parent is gone waits as a zombie until init reaps it (this
    machine's init does so every couple of seconds): it runs nothing and is not counted.
    """
    me = os.getpid()
    still = set()
    for pid in pids:
        st = proc_stat(pid)
        if st is not None and (st[0] != "Z" or st[1] == me):
            still.add(pid)
    return still


def wait_until_gone(find: Callable[[], set[int]], seconds: float = REAP_SECONDS) -> set[int]:
    deadline = time.monotonic() + seconds
    while True:
        left = alive(find())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def describe(pids: set[int]) -> str:
    out = []
    for pid in sorted(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        out.append(f"{pid} {proc_stat(pid)} {cmd}")
    return "; ".join(out)


def pid_is_gone(pid: int, seconds: float = REAP_SECONDS) -> bool:
    """``os.kill(pid, 0)`` raises ProcessLookupError within ``seconds`` (time to be reaped)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
