"""The messages between a worker and the parent, and how one is encoded.

Every message is a msgspec Struct, msgpack-encoded and sent as one frame: a 4-byte
big-endian length, then the body. The same Structs are what executors hand to ``emit``;
in-process executors skip the encoding. This is what an executor plugin needs; how a
stream of frames is read back, and how a large Result is sent in blocks, is
``phasewise.core.framing``'s.

    parent ── Prepare (once per worker), Run ──▶ worker
    parent ◀─ Log, Log, …, Result | Error ── worker

``Started`` is emitted by executors that queue tasks, when a queued task begins.

This module is pure (bytes in, bytes out); reading and writing file descriptors is the
executors' job.
"""

from __future__ import annotations

import mmap
import struct
from typing import TYPE_CHECKING, Any, Union

import msgspec

from phasewise.core.errors import WireError

__all__ = [
    "MAX_FRAME",
    "Body",
    "Error",
    "Log",
    "Message",
    "Prepare",
    "Result",
    "Run",
    "Started",
    "decode",
    "encode",
    "frame_header",
]

_HEADER = struct.Struct(">I")
MAX_FRAME = (1 << 32) - 1


if TYPE_CHECKING:
    _Bytes = bytes | bytearray | memoryview  # what a Result holds: anything bytes-like
else:
    _Bytes = memoryview  # what msgspec decodes a binary field to: a view of the body, no copy

Body = bytes | bytearray
"""A frame's body as ``FrameReader`` hands it out: bytes if small, else a bytearray."""


class Started(msgspec.Struct, tag="started", tag_field="kind", array_like=True, frozen=True):
    """The task has begun on a worker (it may have waited in the executor's queue).

    ``worker`` says which, for people watching the run: ``pid 1234`` for a process, a
    dask worker's address; empty when the task runs in phasewise's own process."""

    timestamp: float
    worker: str = ""


class Log(msgspec.Struct, tag="log", tag_field="kind", array_like=True, frozen=True):
    """Complete lines (no newline) a task wrote on ``stream`` ("stdout" or "stderr")."""

    stream: str
    lines: list[str]
    timestamp: float


class Result(msgspec.Struct, tag="result", tag_field="kind", array_like=True, frozen=True):
    """The handler returned: ``payload`` is its return value pickled with protocol 5, and
    ``buffers`` the pickle's out-of-band buffers, in order (none for most values):
    ``pickle.loads(payload, buffers=buffers)``.

    Received, both are memoryviews of the frames they came in; a buffer sent with
    ``encode_parts`` arrives writable, in memory of its own.
    """

    payload: _Bytes
    buffers: tuple[_Bytes, ...] = ()


class Error(msgspec.Struct, tag="error", tag_field="kind", array_like=True, frozen=True):
    """The handler raised, or the worker could not run it (``type`` names the exception)."""

    type: str
    message: str
    traceback: str


class Run(msgspec.Struct, tag="run", tag_field="kind", array_like=True, frozen=True):
    """Run one task: the pickled handler, and the pickled keyword arguments it is called
    with (``context``, ``params``, ``workdir``, those it asked for; empty: none)."""

    phase: str
    handler: bytes
    arguments: bytes
    capture: bool


class Prepare(msgspec.Struct, tag="prepare", tag_field="kind", array_like=True, frozen=True):
    """Sent to a worker before its first task: what it needs to unpickle tasks as the
    parent would (see ``phasewise.core.bootstrap``).

    ``sys_path`` is the parent's import path, every entry absolute; ``interpreter`` lists
    those of its entries that belong to the parent's own Python installation (stdlib,
    site-packages), which a worker running another Python must not take; ``prefix`` is
    the parent's ``sys.prefix``; ``depth`` how many worker processes deep the worker
    runs (1: started by a top-level run); ``pid`` the parent's process id."""

    sys_path: tuple[str, ...]
    interpreter: tuple[str, ...]
    prefix: str
    depth: int
    pid: int


Message = Union[Started, Log, Result, Error, Run, Prepare]  # noqa: UP007 - msgspec needs a runtime Union on 3.10

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def frame_header(length: int) -> bytes:
    """The 4-byte header of a frame whose body is ``length`` bytes (``WireError`` if that
    is more than a frame carries)."""
    if length > MAX_FRAME:
        raise WireError(_too_large(length))
    return _HEADER.pack(length)


def _too_large(length: int) -> str:
    return f"{length} bytes are more than a frame carries ({MAX_FRAME})"


def encode(message: Message) -> bytes:
    """One frame: length header + msgpack body."""
    body = _encoder.encode(message)
    return frame_header(len(body)) + body


def decode(body: Body | memoryview) -> Message:
    """Decode one frame's body; a malformed body raises ``WireError``.

    A Result's payload and buffers are views of ``body``, which they keep alive."""
    return _decode(_decoder, body)


def _decode(decoder: msgspec.msgpack.Decoder[Any], body: Body | mmap.mmap | memoryview) -> Any:
    try:
        return decoder.decode(body)
    except ValueError as exc:  # msgspec's DecodeError, ValidationError; UnicodeDecodeError
        raise WireError(f"malformed frame ({len(body)} bytes): {exc}") from None


