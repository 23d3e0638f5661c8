"""The wire: msgspec Structs, msgpack bodies, length-prefixed frames (DESIGN.md §6)."""

from __future__ import annotations

import mmap
import struct
import tracemalloc
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasewise.core import framing, wire
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
    wire.Prepare(("/work/project", "/usr/lib/python3.11"), ("/usr/lib/python3.11",), "/usr", 1,
                 4242),
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
    reader = framing.FrameReader()
    bodies: list[bytes] = []
    for chunk in chunks:
        bodies.extend(reader.feed(chunk))
    assert [wire.decode(b) for b in bodies] == messages
    assert reader.pending == 0


def test_frame_reader_byte_by_byte() -> None:
    stream = b"".join(wire.encode(m) for m in EXAMPLES)
    reader = framing.FrameReader()
    bodies = [body for i in range(len(stream)) for body in reader.feed(stream[i : i + 1])]
    assert [wire.decode(b) for b in bodies] == EXAMPLES


def test_frame_reader_many_frames_in_one_chunk() -> None:
    stream = b"".join(wire.encode(m) for m in EXAMPLES)
    reader = framing.FrameReader()
    assert [wire.decode(b) for b in reader.feed(stream)] == EXAMPLES


def test_frame_reader_empty_chunk_returns_nothing() -> None:
    reader = framing.FrameReader()
    assert reader.feed(b"") == []
    assert reader.pending == 0


def test_a_zero_length_frame_is_one_empty_body() -> None:
    reader = framing.FrameReader()
    assert reader.feed(b"\x00\x00\x00\x00") == [b""]
    assert reader.pending == 0


@pytest.mark.parametrize("keep", [1, 3, 4, 5, -1])
def test_pending_after_a_truncated_frame(keep: int) -> None:
    whole = wire.encode(wire.Result(b"payload"))
    truncated = whole[:keep]
    reader = framing.FrameReader()
    assert reader.feed(wire.encode(wire.Result(b"first")) + truncated) == [
        _body(wire.encode(wire.Result(b"first")))
    ]
    assert reader.pending == len(truncated)
    assert reader.pending > 0
    # the rest of the frame completes it
    assert reader.feed(whole[len(truncated):]) == [_body(whole)]
    assert reader.pending == 0


def test_frame_reader_returns_bytes_not_views_into_its_buffer() -> None:
    reader = framing.FrameReader()
    first = reader.feed(wire.encode(wire.Result(b"aaaa")))
    reader.feed(wire.encode(wire.Result(b"bbbb")))
    assert isinstance(first[0], bytes)
    assert wire.decode(first[0]) == wire.Result(b"aaaa")


def test_frame_reader_hands_out_a_large_body_as_a_bytearray_of_its_own() -> None:
    message = wire.Log("stdout", ["x" * framing.LARGE_FRAME], 1.0)
    reader = framing.FrameReader()
    (body,) = reader.feed(wire.encode(message))
    assert isinstance(body, bytearray)
    assert wire.decode(body) == message


def test_frame_reader_allocates_only_as_bytes_arrive() -> None:
    """A header announcing 4 GB (garbage, say) costs nothing until the bytes come."""
    reader = framing.FrameReader()
    tracemalloc.start()
    try:
        assert reader.feed(struct.pack(">I", wire.MAX_FRAME) + b"x" * 1000) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert reader.pending == 4 + 1000
    assert reader.expected == 4 + wire.MAX_FRAME


# ── large results: encode_parts and MessageReader ───────────────────────────


def _pattern(size: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 for i in range(256)) * (size // 256) + b"z" * (size % 256)


def _join(parts: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(part) for part in parts)


def _same(received: wire.Message, sent: wire.Message) -> bool:
    """Equal messages; a Result's payload and buffers compared by content."""
    if not isinstance(sent, wire.Result):
        return received == sent
    return (isinstance(received, wire.Result)
            and bytes(received.payload) == bytes(sent.payload)
            and [bytes(b) for b in received.buffers] == [bytes(b) for b in sent.buffers])


@pytest.mark.parametrize("message", [
    *EXAMPLES,
    wire.Result(b"p" * (framing.LARGE_FRAME - 1)),
    wire.Log("stdout", ["x" * framing.LARGE_FRAME], 1.0),
], ids=lambda m: type(m).__name__)
def test_encode_parts_sends_small_results_and_other_messages_whole(message: wire.Message) -> None:
    assert framing.encode_parts(message) == [wire.encode(message)]


def test_encode_parts_sends_buffers_themselves_not_copies() -> None:
    first, second = bytearray(_pattern(framing.LARGE_FRAME)), bytearray(_pattern(100_000, 1))
    parts = framing.encode_parts(wire.Result(b"pickle", (first, second)))
    views = [p for p in parts if isinstance(p, memoryview)]
    assert [view.obj for view in views[1:]] == [first, second]


@pytest.mark.parametrize("message", [
    wire.Result(_pattern(framing.LARGE_FRAME)),  # a large pickle alone
    wire.Result(b"\x80\x05N.", (_pattern(300_000),)),
    wire.Result(b"\x80\x05N.", (_pattern(70_000), b"", b"tiny", _pattern(1 << 20, 7))),
    wire.Result(_pattern(200_000), tuple(_pattern(framing.LARGE_FRAME, i) for i in range(20))),
], ids=["large-pickle", "one-buffer", "mixed-buffers", "many-buffers"])
def test_a_result_in_blocks_comes_back_whole(message: wire.Result) -> None:
    parts = framing.encode_parts(message)
    assert len(parts) > 1
    reader = framing.MessageReader()
    (received,) = reader.feed(_join(parts))
    assert _same(received, message)
    assert reader.pending == 0


def test_received_buffers_are_writable_and_share_no_memory() -> None:
    message = wire.Result(b"x", (_pattern(framing.LARGE_FRAME), b"small", _pattern(100_000)))
    (received,) = framing.MessageReader().feed(_join(framing.encode_parts(message)))
    assert isinstance(received, wire.Result)
    buffers = [memoryview(b) for b in received.buffers]
    assert not any(b.readonly for b in buffers)
    for b in buffers:
        b[:1] = b"\xff"
    assert [bytes(b[1:]) for b in buffers] == [bytes(b[1:]) for b in message.buffers]


def test_a_very_large_block_comes_back_whole_and_writable() -> None:
    """40 MB: memory the reader maps itself, rather than malloc's (see framing._allocate)."""
    block = _pattern(40 << 20)
    parts = framing.encode_parts(wire.Result(b"x", (block,)))
    (received,) = framing.MessageReader().feed(_join(parts))
    assert isinstance(received, wire.Result)
    (buffer,) = received.buffers
    assert buffer == block
    view = memoryview(buffer)
    view[-1] = 0
    assert view[-1] == 0


def test_a_large_block_is_read_in_place() -> None:
    """Once its header is in, the whole rest of a large block is offered to one read."""
    size = 3 * framing.FrameReader.SIZE
    parts = framing.encode_parts(wire.Result(b"x", (_pattern(size),)))
    stream = _join(parts)
    reader = framing.MessageReader()
    before_block = len(stream) - size
    assert list(reader.feed(stream[: before_block + 10])) == []
    target = reader.buffer()
    assert len(target) == size - 10
    target[:] = stream[before_block + 10 :]
    (received,) = reader.filled(len(target))
    assert _same(received, wire.Result(b"x", (_pattern(size),)))


_large_or_small = st.one_of(
    _messages,
    st.builds(lambda n, k, seed: wire.Result(
        _pattern(n, seed),
        tuple(_pattern(framing.LARGE_FRAME + 97 * i, seed + i) for i in range(k))),
        st.integers(0, 100_000), st.integers(0, 3), st.integers(0, 250)),
)


@settings(max_examples=40, deadline=None)
@given(messages=st.lists(_large_or_small, max_size=6), data=st.data())
def test_message_reader_returns_exactly_the_messages_for_any_reads(
    messages: list[wire.Message], data: st.DataObject
) -> None:
    stream = b"".join(_join(framing.encode_parts(m)) for m in messages)
    reader, received, at = framing.MessageReader(), [], 0
    while at < len(stream):
        target = reader.buffer()
        n = min(len(target), len(stream) - at, data.draw(st.sampled_from([1, 5, 4096, 1 << 20])))
        target[:n] = stream[at : at + n]
        at += n
        received.extend(reader.filled(n))
    assert len(received) == len(messages)
    assert all(_same(r, m) for r, m in zip(received, messages, strict=True))
    assert reader.pending == 0


def test_a_block_of_the_wrong_size_is_a_malformed_frame() -> None:
    parts = framing.encode_parts(wire.Result(b"x", (_pattern(framing.LARGE_FRAME),)))
    head_and_pickle = _join(parts[:3])  # [head frame, pickle's header, pickle, …]
    wrong = struct.pack(">I", 10) + b"0123456789"
    with pytest.raises(WireError, match="malformed frame"):
        framing.MessageReader().feed(head_and_pickle + wrong)


def test_only_a_message_reader_takes_a_result_in_blocks() -> None:
    head = framing.encode_parts(wire.Result(_pattern(framing.LARGE_FRAME)))[0]
    with pytest.raises(WireError, match="malformed frame"):
        wire.decode(_body(bytes(head)))


@pytest.mark.parametrize("cut", [2, 10, 40, 5000, -1])
def test_a_result_cut_short_is_pending_and_says_how_large_it_was(cut: int) -> None:
    parts = framing.encode_parts(wire.Result(b"x", (_pattern(100_000),)))
    stream, head = _join(parts), len(parts[0])
    sent = stream[:cut]
    reader = framing.MessageReader()
    assert list(reader.feed(sent)) == []
    assert reader.pending == len(sent)
    # as far as is known: the first frame's size, until it is in and announces the blocks
    assert reader.expected == (None if len(sent) < 4 else head if len(sent) < head
                               else len(stream))


def test_encode_parts_refuses_a_block_over_the_frame_limit() -> None:
    huge = mmap.mmap(-1, wire.MAX_FRAME + 1, prot=mmap.PROT_READ)  # address space only
    try:
        with pytest.raises(WireError, match="more than a frame carries"):
            framing.encode_parts(wire.Result(b"x", (memoryview(huge),)))
    finally:
        huge.close()
