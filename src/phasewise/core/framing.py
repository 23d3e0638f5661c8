"""Reading frames back from a byte stream, and sending a large Result in blocks.

A large Result is sent in blocks: a frame that says how large they are, then its pickle
and each of the pickle's out-of-band buffers (PEP 574: a numpy array's memory, say) as a
raw frame of its own::

    ◀─ [len][msgpack: result blocks (sizes)] [len][pickle] [len][buffer 0] …

``encode_parts`` gives these frames as pieces for ``os.writev``, the buffers not copied.
``MessageReader`` puts the Result back together, reading each large block straight into
memory of its own, which the unpickled array then uses: from the worker's array to the
parent's, the bytes are copied twice, both times by the kernel (into the pipe, out of it).

Pure, as ``wire`` is: the executors do the reading and writing.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from typing import Any, Union

import msgspec

from phasewise.core.errors import WireError
from phasewise.core.wire import (
    _HEADER,
    Body,
    Message,
    Result,
    _decode,
    _encoder,
    encode,
    frame_header,
)

__all__ = ["LARGE_FRAME", "FrameReader", "MessageReader", "encode_parts"]

LARGE_FRAME = 64 * 1024
"""A body of at least this many bytes is large: ``FrameReader`` gathers it apart, and
``MessageReader`` reads a block this large in place. ``encode_parts`` sends a Result in
blocks if its pickle is this large; workers keep smaller pickle buffers in the pickle."""


class _ResultBlocks(msgspec.Struct, tag="result-blocks", tag_field="kind", array_like=True,
                    frozen=True):
    """A Result follows in blocks of these sizes, each a raw frame: the payload, then the
    buffers. Only ``MessageReader`` decodes it: it hands out the Result."""

    sizes: tuple[int, ...]


_reader_decoder = msgspec.msgpack.Decoder(Union[Message, _ResultBlocks])  # noqa: UP007


def encode_parts(message: Message) -> list[bytes | memoryview]:
    """``message`` as the pieces to write, in order (with ``os.writev``).

    A Result with out-of-band buffers, or with a large payload, comes in blocks (see the
    module's docstring): its payload and buffers themselves, not copies, each after its
    frame header. Anything else is one piece, ``encode(message)``. Raises ``WireError``
    if a block is too large for a frame.
    """
    if not isinstance(message, Result) or (
            not message.buffers and len(message.payload) < LARGE_FRAME):
        return [encode(message)]
    blocks = [memoryview(block).cast("B") for block in (message.payload, *message.buffers)]
    sizes = tuple(block.nbytes for block in blocks)
    head = _encoder.encode(_ResultBlocks(sizes))
    parts: list[bytes | memoryview] = [frame_header(len(head)) + head]
    for block, size in zip(blocks, sizes, strict=True):
        parts += [frame_header(size), block]
    return parts


class FrameReader:
    """Reassembles frames from a byte stream, without doing any I/O itself.

    Like asyncio's ``BufferedProtocol``, it says where the next bytes should go, so that
    nothing is copied on the way in but what must be::

        n = os.readv(fd, [reader.buffer()])   # read into the reader's buffer…
        bodies = reader.filled(n)             # …and get the frames now complete

    Frames gather in one reusable buffer, and small ones come out as ``bytes``. A body of
    ``LARGE_FRAME`` bytes or more is gathered into a ``bytearray`` of its own, which it is
    handed out as. ``feed(chunk)`` does the same with bytes already read.

    The reader allocates only as bytes arrive: a bad header that announces 4 GB costs
    nothing until 4 GB come. A reader that knows how large a frame will be, such as
    ``MessageReader``, can ``take`` the frame being read and read the rest in place.
    """

    __slots__ = ("_buf", "_end", "_large", "_need", "_start", "_view")

    SIZE = 256 * 1024
    """The reusable buffer's size: the most one read takes."""

    def __init__(self) -> None:
        self._buf = bytearray(self.SIZE)  # never resized, so views of it stay valid
        self._view = memoryview(self._buf)
        self._start = self._end = 0  # the bytes not parsed yet are _buf[_start:_end]
        self._need = -1  # body size of the frame being read, -1 while reading a header
        self._large: bytearray | None = None  # a large body, as much of it as has come

    def buffer(self) -> memoryview:
        """Where the next bytes read should go (never empty; valid until ``filled``)."""
        if self._large is not None:  # at the start, and no further than the frame's end
            return self._view[: min(self.SIZE, self._need - len(self._large))]
        return self._view[self._end :]

    def filled(self, nbytes: int) -> list[Body]:
        """``nbytes`` bytes were written at the start of ``buffer()``: the bodies of the
        frames now complete, in order."""
        large = self._large
        if large is None:
            self._end += nbytes
            return self._parse()
        large += self._view[:nbytes]
        if len(large) < self._need:
            return []
        self._large, self._need = None, -1
        return [large]

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Body]:
        """The bodies of the frames that ``chunk``, the next bytes of the stream, completes."""
        return _feed(self, chunk)

    def _parse(self) -> list[Body]:
        view, start, end = self._view, self._start, self._end
        bodies: list[Body] = []
        while True:
            if self._need < 0:
                if end - start < _HEADER.size:
                    break
                (self._need,) = _HEADER.unpack_from(view, start)
                start += _HEADER.size
            need = self._need
            if need >= LARGE_FRAME:  # gathered apart, from what has come so far
                have = min(need, end - start)
                body = bytearray(view[start : start + have])
                start += have
                if have < need:
                    self._large = body
                    break
                bodies.append(body)
            elif end - start >= need:
                bodies.append(bytes(view[start : start + need]))
                start += need
            else:
                break
            self._need = -1
        if start == end:
            start = end = 0
        elif len(self._buf) - end < LARGE_FRAME:  # make room at the end: move the few
            view[: end - start] = view[start:end]  # bytes of the partial frame to the front
            start, end = 0, end - start
        self._start, self._end = start, end
        return bodies

    @property
    def frame_size(self) -> int | None:
        """The body size of the frame being read, once its header is in."""
        return self._need if self._need >= 0 else None

    def take(self) -> bytes | bytearray:
        """Hand over the frame being read (its header is in): what has come of its body.
        The caller reads the rest itself; the reader expects a header next."""
        if self._large is not None:
            partial: bytes | bytearray = self._large
        else:
            partial = bytes(self._view[self._start : self._end])
        self._large, self._need, self._start, self._end = None, -1, 0, 0
        return partial

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (non-zero at end of stream means a truncated frame)."""
        have = self._end - self._start if self._large is None else len(self._large)
        return have + (_HEADER.size if self._need >= 0 else 0)

    @property
    def expected(self) -> int | None:
        """The whole size of the unfinished frame, header included, once its header is in."""
        return _HEADER.size + self._need if self._need >= 0 else None


def _feed(reader: FrameReader | MessageReader, chunk: bytes | bytearray | memoryview) -> list[Any]:
    """Copy ``chunk`` into ``reader`` as if it had been read there; what it completes."""
    data = memoryview(chunk).cast("B")
    out: list[Any] = []
    while data:
        target = reader.buffer()
        n = min(len(target), len(data))
        target[:n] = data[:n]
        out += reader.filled(n)
        data = data[n:]
    return out


_MAP_FROM = 32 << 20
"""Above glibc's largest mmap threshold (on 64-bit), malloc maps every block afresh and the
kernel faults it in page by page as it is first written. Mapping it with MAP_POPULATE
faults it in all at once, much faster: about a third of a 100 MB result's time, measured.
Smaller blocks are better off with malloc, which reuses memory already faulted in."""
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux


def _allocate(size: int) -> bytearray | mmap.mmap:
    """Writable memory of its own for a block (private, as a bytearray's is)."""
    if size < _MAP_FROM or not _POPULATE:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | _POPULATE)


class MessageReader:
    """Whole messages from a worker's byte stream, without doing any I/O itself: a
    ``FrameReader`` whose frames it decodes, putting a Result sent in blocks back
    together::

        n = os.readv(fd, [reader.buffer()])
        for message in reader.filled(n):      # raises WireError at a malformed frame
            ...

    A large block, whose size the Result's first frame announced, is read in place: into
    memory of its own, which the unpickled value then uses. From the pipe to there, its
    bytes are copied once, by the kernel.
    """

    __slots__ = ("_block", "_blocks", "_filled", "_frames", "_received", "_sizes", "_total")

    def __init__(self) -> None:
        self._frames = FrameReader()
        self._sizes: tuple[int, ...] = ()  # of the blocks of a Result being received
        self._blocks: list[memoryview] = []  # those received so far
        self._block: bytearray | mmap.mmap | None = None  # the large block being read in place
        self._filled = 0  # how much of it has come
        self._received = 0  # bytes of the Result received so far, frame headers included
        self._total = 0  # and in all

    def buffer(self) -> memoryview:
        """Where the next bytes read should go (never empty; valid until ``filled``)."""
        if self._block is None and self._sizes:
            self._read_in_place()
        if self._block is not None:
            return memoryview(self._block)[self._filled :]
        return self._frames.buffer()

    def _read_in_place(self) -> None:
        """If the frame being read is the large block due next, take it from the frames."""
        size = self._sizes[len(self._blocks)]
        if size < LARGE_FRAME or self._frames.frame_size != size:
            return  # a small block, or not yet its header, or not the size announced
        partial = self._frames.take()
        self._block, self._filled = _allocate(size), len(partial)
        self._block[: len(partial)] = partial

    def filled(self, nbytes: int) -> Iterator[Message]:
        """``nbytes`` bytes were written at the start of ``buffer()``: the messages now
        complete, in order. Iterate to the end (the bytes are taken in at once; the frames
        are decoded as the iteration reaches them)."""
        if self._block is None:
            return self._messages(self._frames.filled(nbytes))
        self._filled += nbytes
        if self._filled < len(self._block):
            return iter(())
        block, self._block = self._block, None
        return self._messages([block])

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Message]:
        """The messages that ``chunk``, the next bytes of the stream, completes."""
        return _feed(self, chunk)

    def _messages(self, bodies: Sequence[Body | mmap.mmap]) -> Iterator[Message]:
        for body in bodies:
            if self._sizes:
                result = self._take_block(body)
                if result is not None:
                    yield result
                continue
            message = _decode(_reader_decoder, body)
            if not isinstance(message, _ResultBlocks):
                yield message
            elif not message.sizes:
                raise WireError("malformed frame: a result in no blocks")
            else:
                self._sizes, self._received = message.sizes, _HEADER.size + len(body)
                self._total = self._received + sum(_HEADER.size + n for n in message.sizes)

    def _take_block(self, body: Body | mmap.mmap) -> Result | None:
        """Take one block of the Result being received; the Result once it is whole."""
        blocks, size = self._blocks, self._sizes[len(self._blocks)]
        if len(body) != size:
            raise WireError(f"malformed frame ({len(body)} bytes): block {len(blocks)} of "
                            f"a result, of {size} bytes, was due")
        # a buffer must be writable, as it was in the worker: a small one came as bytes
        blocks.append(memoryview(bytearray(body) if blocks and isinstance(body, bytes) else body))
        self._received += _HEADER.size + size
        if len(blocks) < len(self._sizes):
            return None
        self._sizes, self._blocks, self._received, self._total = (), [], 0, 0
        return Result(blocks[0], tuple(blocks[1:]))

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message (non-zero at end of stream: it was cut short)."""
        in_place = _HEADER.size + self._filled if self._block is not None else 0
        return self._received + in_place + self._frames.pending

    @property
    def expected(self) -> int | None:
        """The whole size of the unfinished message, as far as is known: that of its first
        frame, until that frame is in (and says whether blocks follow)."""
        return self._total if self._sizes else self._frames.expected
