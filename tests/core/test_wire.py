"""The wire: msgspec Structs, msgpack bodies, length-prefixed frames (DESIGN.md §6)."""

from __future__ import annotations

import struct
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasewise.core import wire
from phasewise.core.errors import PhasewiseError, WireError

EXAMPLES: list[wire.Message] = [
    wire.Started(1234.5),
    wire.Log("stdout", ["hello", "", "wörld \ufffd"], 12.5),
    wire.Log("stderr", [], 0.0),
    wire.Result(b""),
    wire.Result(bytes(range(256)) * 3),
    wire.Error("ValueError", "bad value", "Traceback (most recent call last):\n  ...\n"),
    wire.Error("", "", ""),
    wire.Run("build", b"\x80\x05handler", b"\x80\x05context", True),
    wire.Run("ünïcode phase", b"", b"", False),
]


def _body(frame: bytes) -> bytes:
    (length,) = struct.unpack(">I", frame[:4])
    assert len(frame) == 4 + length
    return frame[4:]


# ── encode / decode ─────────────────────────────────────────────────────────


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_struct_roundtrips(message: wire.Message) -> None:
    frame = wire.encode(message)
    decoded = wire.decode(_body(frame))
    assert type(decoded) is type(message)
    assert decoded == message


def test_every_message_kind_is_covered() -> None:
    assert {type(m) for m in EXAMPLES} == set(typing.get_args(wire.Message))


def test_decode_accepts_a_memoryview() -> None:
    message = wire.Result(b"abc")
    assert wire.decode(memoryview(_body(wire.encode(message)))) == message


def test_the_header_is_a_four_byte_big_endian_length() -> None:
    frame = wire.encode(wire.Result(b"x" * 300))
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4


@given(
    stream=st.sampled_from(["stdout", "stderr"]),
    lines=st.lists(st.text(), max_size=20),
    timestamp=st.floats(allow_nan=False),
)
def test_log_roundtrips_any_text(stream: str, lines: list[str], timestamp: float) -> None:
    message = wire.Log(stream, lines, timestamp)
    assert wire.decode(_body(wire.encode(message))) == message


@pytest.mark.parametrize(
    "body",
    [
        b"",  # nothing at all
        b"\xc1",  # a byte msgpack never uses
        b"\x93\xa3log",  # a truncated array
        b"\x92\xa7unknown\xa1x",  # an unknown tag
        b"\x92\xa6result\x01",  # Result with an int where bytes belong
        b"\x91\xa5error",  # Error without its fields
        b"\xa5hello",  # a bare string, not a tagged array
        b"\x91\xa2\x00\x80",  # a tag that is not UTF-8
        b"\x94\xa3log\xa6stdout\x91\xa2\xff\xfe\xcb" + bytes(8),  # a line that is not UTF-8
    ],
)
def test_a_malformed_body_raises_wire_error(body: bytes) -> None:
    with pytest.raises(WireError) as info:
        wire.decode(body)
    assert "malformed frame" in str(info.value)
    assert isinstance(info.value, PhasewiseError)


_PREFIXES = [b"\x91", b"\x92\xa7started", b"\x94\xa3log", b"\x92\xa6result",
             b"\x94\xa5error", b"\x95\xa3run"]


@given(st.one_of(st.binary(max_size=64),
                 st.builds(bytes.__add__, st.sampled_from(_PREFIXES), st.binary(max_size=24))))
def test_decoding_random_bytes_gives_a_message_or_wire_error(body: bytes) -> None:
    try:
        message = wire.decode(body)
    except WireError:
        return
    assert isinstance(message, typing.get_args(wire.Message))


# ── FrameReader ─────────────────────────────────────────────────────────────

_messages = st.one_of(
    st.builds(wire.Started, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(wire.Log, st.sampled_from(["stdout", "stderr"]), st.lists(st.text(max_size=30),
              max_size=5), st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(wire.Result, st.binary(max_size=300)),
    st.builds(wire.Error, st.text(max_size=10), st.text(max_size=30), st.text(max_size=30)),
    st.builds(wire.Run, st.text(max_size=10), st.binary(max_size=100), st.binary(max_size=50),
              st.booleans()),
)


@given(messages=st.lists(_messages, max_size=12), data=st.data())
def test_frame_reader_returns_exactly_the_frames_for_any_chunking(
    messages: list[wire.Message], data: st.DataObject
) -> None:
    stream = b"".join(wire.encode(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    reader = wire.FrameReader()
    bodies: list[bytes] = []
    for chunk in chunks:
        bodies.extend(reader.feed(chunk))
    assert [wire.decode(b) for b in bodies] == messages
    assert reader.pending == 0


def test_frame_reader_byte_by_byte() -> None:
    stream = b"".join(wire.encode(m) for m in EXAMPLES)
    reader = wire.FrameReader()
    bodies = [body for i in range(len(stream)) for body in reader.feed(stream[i : i + 1])]
    assert [wire.decode(b) for b in bodies] == EXAMPLES


def test_frame_reader_many_frames_in_one_chunk() -> None:
    stream = b"".join(wire.encode(m) for m in EXAMPLES)
    reader = wire.FrameReader()
    assert [wire.decode(b) for b in reader.feed(stream)] == EXAMPLES


def test_frame_reader_empty_chunk_returns_nothing() -> None:
    reader = wire.FrameReader()
    assert reader.feed(b"") == []
    assert reader.pending == 0


def test_a_zero_length_frame_is_one_empty_body() -> None:
    reader = wire.FrameReader()
    assert reader.feed(b"\x00\x00\x00\x00") == [b""]
    assert reader.pending == 0


@pytest.mark.parametrize("keep", [1, 3, 4, 5, -1])
def test_pending_after_a_truncated_frame(keep: int) -> None:
    whole = wire.encode(wire.Result(b"payload"))
    truncated = whole[:keep]
    reader = wire.FrameReader()
    assert reader.feed(wire.encode(wire.Result(b"first")) + truncated) == [
        _body(wire.encode(wire.Result(b"first")))
    ]
    assert reader.pending == len(truncated)
    assert reader.pending > 0
    # the rest of the frame completes it
    assert reader.feed(whole[len(truncated):]) == [_body(whole)]
    assert reader.pending == 0


def test_frame_reader_returns_bytes_not_views_into_its_buffer() -> None:
    reader = wire.FrameReader()
    first = reader.feed(wire.encode(wire.Result(b"aaaa")))
    reader.feed(wire.encode(wire.Result(b"bbbb")))
    assert isinstance(first[0], bytes)
    assert wire.decode(first[0]) == wire.Result(b"aaaa")
