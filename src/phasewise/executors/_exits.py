"""How a worker process ended, in words: the error message of a phase whose worker
died before it replied."""

from __future__ import annotations

import signal

from phasewise.core import framing

__all__ = ["describe_exit", "describe_unfinished"]


def describe_exit(phase: str, pid: int, exitcode: int | None) -> str:
    """Why a worker died, in words: the signal's name, or the exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -exitcode == 9 else ""
        return f"phase {phase!r}: its worker process {pid} was killed by {name}{hint}"
    return f"phase {phase!r}: its worker process {pid} exited with code {exitcode} before replying"


def describe_unfinished(reader: framing.MessageReader) -> str:
    """What a worker that has gone left half-sent, in words to append to ``describe_exit``
    ("" if nothing)."""
    if not reader.pending:
        return ""
    expected = reader.expected
    of = f"of the {expected} " if expected is not None else ""
    return f"; it had sent {reader.pending} {of}bytes of a message"
