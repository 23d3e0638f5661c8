"""Messages between a worker and the parent, and how they are framed.

Every message is a msgspec Struct, msgpack-encoded and sent as one frame: a 4-byte
big-endian length, then the body. The same Structs are what executors hand to
``emit``; in-process executors skip the encoding.

    parent ── Run ──────────────▶ worker
    parent ◀─ Log, Log, …, Result | Error ── worker

``Started`` is emitted by executors that queue tasks, when a queued task begins.

This module is pure (bytes in, bytes out); reading and writing file descriptors is the
executors' job.
"""

from __future__ import annotations

import struct
from typing import Union

import msgspec

from phasewise.core.errors import WireError

__all__ = [
    "MAX_FRAME",
    "Error",
    "FrameReader",
    "Log",
    "Message",
    "Result",
    "Run",
    "Started",
    "decode",
    "encode",
]

_HEADER = struct.Struct(">I")
MAX_FRAME = (1 << 32) - 1


class Started(msgspec.Struct, tag="started", tag_field="kind", array_like=True, frozen=True):
    """The task has begun on a worker (it may have waited in the executor's queue)."""

    timestamp: float


class Log(msgspec.Struct, tag="log", tag_field="kind", array_like=True, frozen=True):
    """Complete lines (no newline) a task wrote on ``stream`` ("stdout" or "stderr")."""

    stream: str
    lines: list[str]
    timestamp: float


class Result(msgspec.Struct, tag="result", tag_field="kind", array_like=True, frozen=True):
    """The handler returned; ``payload`` is its pickled return value."""

    payload: bytes


class Error(msgspec.Struct, tag="error", tag_field="kind", array_like=True, frozen=True):
    """The handler raised, or the worker could not run it (``type`` names the exception)."""

    type: str
    message: str
    traceback: str


class Run(msgspec.Struct, tag="run", tag_field="kind", array_like=True, frozen=True):
    """Run one task: the pickled handler, and its pickled context (empty: no context)."""

    phase: str
    handler: bytes
    context: bytes
    capture: bool


Message = Union[Started, Log, Result, Error, Run]  # noqa: UP007 - msgspec needs a runtime Union on 3.10

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """One frame: length header + msgpack body."""
    body = _encoder.encode(message)
    return _HEADER.pack(len(body)) + body


def decode(body: bytes | memoryview) -> Message:
    """Decode one frame's body; a malformed body raises ``WireError``."""
    try:
        return _decoder.decode(body)
    except ValueError as exc:  # msgspec's DecodeError, ValidationError; UnicodeDecodeError
        raise WireError(f"malformed frame ({len(body)} bytes): {exc}") from None


class FrameReader:
    """Reassembles frames from the chunks a pipe yields; ``feed`` returns whole bodies."""

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # body length of the frame being read, -1 while reading a header

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        buf += chunk
        bodies: list[bytes] = []
        start = 0
        while True:
            if self._need < 0:
                if len(buf) - start < _HEADER.size:
                    break
                (self._need,) = _HEADER.unpack_from(buf, start)
                start += _HEADER.size
            if len(buf) - start < self._need:
                break
            bodies.append(bytes(buf[start : start + self._need]))
            start += self._need
            self._need = -1
        if start:
            del buf[:start]
        return bodies

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (non-zero at end of stream means a truncated frame)."""
        return len(self._buf) + (_HEADER.size if self._need >= 0 else 0)
