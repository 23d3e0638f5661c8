"""The parent's side of ``worker.run_payload``: turning a worker's reply into the phase's
value, or into the exception that stands for its failure.

    worker:  reply = run_payload(payload, emit)      -> wire.Result | wire.Error
             send it: framing.encode_parts(reply)       (frames; b"".join(...) for bytes)
    parent:  value = reply_value(reply, phase, executor)   # or raises

The exception follows the remote-error convention of the executor protocol: a handler
that raised in the worker becomes ``RemotePhaseError`` (its type, message and the
worker's traceback, which the run shows as the phase's traceback); a handler, context or
result that would not pickle, a ``SerializationError``; a worker that refused to start
processes (a script without its ``__main__`` guard), a ``BootstrapError``, which stops
the run.
"""

from __future__ import annotations

from typing import Any, Union

from phasewise.core import framing, wire
from phasewise.core.errors import BootstrapError, RemotePhaseError, SerializationError, WireError
from phasewise.executors._pickling import load_result

__all__ = ["Reply", "error_from_reply", "reply_value"]

Reply = Union[wire.Result, wire.Error]  # noqa: UP007 - a runtime alias, 3.10 included
"""What ``run_payload`` returns and a worker sends back: the value, or why there is none."""


def error_from_reply(message: wire.Error, phase: str, executor: str) -> Exception:
    """The exception a worker's Error reply stands for (to raise, or set on a future)."""
    if message.type == "BootstrapError":  # not the phase's fault: the run stops
        return BootstrapError(executor, message.message)
    if message.type == "SerializationError":
        return SerializationError(message.message, phase)
    return RemotePhaseError(message.type, message.message, message.traceback, phase)


def reply_value(reply: Reply | bytes | bytearray | memoryview, phase: str,
                executor: str) -> Any:
    """The value a worker's reply carries, or raise the exception it stands for.

    ``reply`` is the message ``run_payload`` returned (sent here as it is, or decoded by
    a ``framing.MessageReader``), or the bytes of its frames (``b"".join(
    framing.encode_parts(reply))``, as a cluster executor ships it). ``phase`` and
    ``executor`` name the phase and the executor in the errors. A value that cannot be
    unpickled here raises ``SerializationError``; bytes that are not one reply,
    ``WireError``.
    """
    if type(reply) is not wire.Result:  # the common case first: a pool's every result
        if isinstance(reply, (bytes, bytearray, memoryview)):
            reply = _one_reply(reply, phase)
        if isinstance(reply, wire.Error):
            raise error_from_reply(reply, phase, executor)
    try:
        return load_result(reply)
    except Exception as exc:
        raise SerializationError(
            f"the result of phase {phase!r} could not be unpickled in the parent: "
            f"{type(exc).__name__}: {exc}", phase) from exc


def _one_reply(data: bytes | bytearray | memoryview, phase: str) -> Reply:
    reader = framing.MessageReader()
    messages = reader.feed(data)
    if len(messages) != 1 or not isinstance(messages[0], (wire.Result, wire.Error)):
        kinds = ", ".join(type(m).__name__ for m in messages) or "nothing"
        cut = " and a message cut short" if reader.pending else ""
        raise WireError(f"phase {phase!r}: a reply is one Result or Error, not {kinds}{cut}")
    return messages[0]
