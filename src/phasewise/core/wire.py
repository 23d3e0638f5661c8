"""Events an executor emits while a task runs, and the messages a worker sends back.

msgspec Structs, so that cross-process executors can encode them as msgpack frames.
In-process executors hand the same objects straight to ``emit``.
"""

from __future__ import annotations

import msgspec

__all__ = ["Error", "Log", "Result"]


class Log(msgspec.Struct, tag="log", tag_field="kind", array_like=True, frozen=True):
    """Complete lines (no newline) a task wrote on ``stream`` ("stdout" or "stderr")."""

    stream: str
    lines: list[str]
    timestamp: float


class Result(msgspec.Struct, tag="result", tag_field="kind", array_like=True, frozen=True):
    """The handler returned; ``payload`` is its pickled return value."""

    payload: bytes


class Error(msgspec.Struct, tag="error", tag_field="kind", array_like=True, frozen=True):
    """The handler raised (or the worker could not run it)."""

    type: str
    message: str
    traceback: str
