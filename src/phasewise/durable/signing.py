"""Signed pickles: every state, result or cache pickle phasewise stores carries an
HMAC-SHA256 made with a key only the current user can read, and one that does not
verify is never unpickled.

The key (``key``) is 32 random bytes in ``$PHASEWISE_KEY_FILE`` if that is set, else
``$XDG_CONFIG_HOME/phasewise/key``, else ``~/.config/phasewise/key``; it is made on first
use (mode 0600, in a 0700 directory) and refused if another user can read or write it.

A signed pickle, as bytes or as a file::

    magic   "PWSIGN\\x00\\x01"                       8 bytes
    mac     HMAC-SHA256 of everything below         32 bytes
    meta    u32 length + a JSON object              (what it is; readable unverified)
    pickle  cloudpickle, protocol 5
    buffers the pickle's out-of-band buffers, one after another
    table   u64 length and u8 kind of each buffer, u64 count, u64 length of the pickle

Large arrays go out of band (protocol 5), and so does a large ``bytes`` or ``bytearray``
value, so storing one hashes and writes its memory where it lies (the MAC made on a
helper thread beside the write), and loading one reads the file once: an array's
buffer into a block of memory it then uses, a ``bytes``/``bytearray`` straight into an
object of its own. No copies beyond that read.

Past 400 lines on purpose: the file format, and writing and reading it without copying
a large value, are one thing to get right together.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import mmap
import os
import pickle
import queue
import struct
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from phasewise.core.errors import TamperedError
from phasewise.durable.key import KEY_ENV, key_path, signing_key
from phasewise.durable.safety import check_open, check_private

__all__ = [
    "KEY_ENV",
    "MAGIC",
    "SignedData",
    "dump_signed",
    "key_path",
    "load_signed",
    "open_signed",
    "read_signed",
    "read_signed_meta",
    "sign",
    "verify",
    "write_signed",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

MAGIC = b"PWSIGN\x00\x01"
_MAC_SIZE = 32
_HEAD = len(MAGIC) + _MAC_SIZE  # where the signed part starts
_U32 = struct.Struct("<I")
_TAIL = struct.Struct("<QQ")  # buffer count, pickle length
_MAX_META = 1 << 20
_CHUNK = 1 << 20  # pieces a large value is hashed and written or read in
_OVERLAP = 1 << 20  # from a piece this large on, hashing runs beside the I/O
_SHARED, _OWN_BYTES, _OWN_BYTEARRAY = 0, 1, 2  # how a reader keeps a buffer (_kind)


def sign(data: BytesLike) -> bytes:
    """HMAC-SHA256 of ``data`` with the current user's key."""
    return hmac.new(signing_key(), data, hashlib.sha256).digest()


def verify(data: BytesLike, mac: BytesLike) -> bool:
    """Whether ``mac`` is ``sign(data)`` (compared in constant time)."""
    return hmac.compare_digest(sign(data), bytes(mac))


# writing


class _Mac:
    """HMAC-SHA256 fed in order. Once a piece of ``_OVERLAP`` bytes or more comes, the
    rest is hashed on a helper thread, so hashing a large value overlaps writing or
    reading it (both let go of the GIL). A piece must not change until ``digest``."""

    def __init__(self) -> None:
        self._mac = hmac.new(signing_key(), None, hashlib.sha256)
        self._queue: queue.SimpleQueue[memoryview | None] | None = None
        self._thread: threading.Thread | None = None

    def update(self, piece: memoryview) -> None:
        if self._queue is None:
            if len(piece) < _OVERLAP:
                self._mac.update(piece)
                return
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="phasewise-hmac",
                                            daemon=True)
            self._thread.start()
        self._queue.put(piece)

    def _run(self) -> None:
        assert self._queue is not None
        while (piece := self._queue.get()) is not None:
            self._mac.update(piece)

    def close(self) -> None:
        """Stop the helper thread (if any) once it has hashed everything given to it."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def digest(self) -> bytes:
        self.close()
        return self._mac.digest()


class _Tee:
    """A file-like sink for the pickler: every piece goes to the MAC and to ``out``
    (the piece itself, in chunks, never a copy); counts what went by."""

    __slots__ = ("count", "mac", "out")

    def __init__(self, mac: _Mac, out: Callable[[BytesLike], Any]) -> None:
        self.mac, self.out, self.count = mac, out, 0

    def write(self, piece: BytesLike) -> int:
        view = memoryview(piece).cast("B")
        for start in range(0, len(view), _CHUNK):
            chunk = view[start:start + _CHUNK]
            self.mac.update(chunk)
            self.out(chunk)
        self.count += len(view)
        return len(view)


class _Big:
    """A large ``bytes`` or ``bytearray`` value to store: out of band, so that loading
    reads it straight into an object of its own rather than copying it out of the pickle."""

    __slots__ = ("obj",)

    def __init__(self, obj: bytes | bytearray) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol: Any) -> Any:
        rebuild = _as_bytes if type(self.obj) is bytes else _as_bytearray
        return rebuild, (pickle.PickleBuffer(self.obj),)


def _as_bytes(buffer: Any) -> bytes:
    return buffer if type(buffer) is bytes else bytes(buffer)


def _as_bytearray(buffer: Any) -> bytearray:
    return buffer if type(buffer) is bytearray else bytearray(buffer)


def _kind(raw: memoryview) -> int:
    """How a reader keeps this buffer: an object of its own (bytes: read-only; bytearray),
    or a view of the memory the rest is read into."""
    if type(raw.obj) is bytearray:
        return _OWN_BYTEARRAY
    return _OWN_BYTES if raw.readonly else _SHARED


_ATOMS = (type(None), bool, int, float, str)


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is small plain data (atoms, and short lists, tuples and dicts of
    them), which pickles the same with the standard pickler, only faster."""
    kind = type(value)
    if kind in _ATOMS:
        return kind is not str or len(value) < 4096
    if depth >= 2 or kind not in (list, tuple, dict) or len(value) > 64:
        return False
    items = value.items() if kind is dict else ((item, None) for item in value)
    return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in items)


def _dump_body(value: Any, meta: Mapping[str, Any] | None,
               out: Callable[[BytesLike], Any]) -> bytes:
    """Write everything after the MAC to ``out``; returns the MAC."""
    from phasewise.core.task import _pickler_class

    if type(value) in (bytes, bytearray) and len(value) >= _OVERLAP:
        value = _Big(value)
    head = json.dumps(dict(meta or {}), sort_keys=True, separators=(",", ":")).encode()
    mac = _Mac()
    try:
        tee = _Tee(mac, out)
        tee.write(_U32.pack(len(head)) + head)
        start = tee.count
        buffers: list[pickle.PickleBuffer] = []
        if _plain(value):  # plain data: the C pickler, without setting up cloudpickle's
            tee.write(pickle.dumps(value, protocol=5))
        else:
            _pickler_class()(tee, protocol=5, buffer_callback=buffers.append).dump(value)
        pickle_size = tee.count - start
        sizes, kinds = [], []
        for buffer in buffers:
            raw = buffer.raw()
            tee.write(raw)
            sizes.append(raw.nbytes)
            kinds.append(_kind(raw))
        tee.write(struct.pack(f"<{len(sizes)}Q{len(kinds)}B", *sizes, *kinds)
                  + _TAIL.pack(len(sizes), pickle_size))
        return mac.digest()
    finally:
        mac.close()


def dump_signed(value: Any, meta: Mapping[str, Any] | None = None) -> bytes:
    """``value`` as a signed pickle; ``meta`` (JSON-able) travels with it, readable
    without unpickling. Raises whatever pickling raises."""
    out = io.BytesIO()
    out.write(MAGIC + bytes(_MAC_SIZE))
    mac = _dump_body(value, meta, out.write)
    out.seek(len(MAGIC))
    out.write(mac)
    return out.getvalue()


def write_signed(path: str | os.PathLike[str], value: Any,
                 meta: Mapping[str, Any] | None = None) -> int:
    """Store ``value`` at ``path`` as a signed pickle, atomically: written to a temp file
    (0600) in the same directory, fsync'd, renamed over ``path``, the directory fsync'd.
    Returns the file's size. Pickling or writing errors propagate; nothing is left."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(fd, "wb") as out:
            out.write(MAGIC + bytes(_MAC_SIZE))
            mac = _dump_body(value, meta, out.write)
            out.flush()
            size = out.tell()
            os.pwrite(fd, mac, len(MAGIC))
            os.fsync(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return size


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# reading


class SignedData:
    """A signed pickle whose MAC has been checked: ``meta``, and ``load()`` to unpickle
    the value (its out-of-band buffers are what was read, not copies)."""

    __slots__ = ("_buffers", "_pickle", "meta")

    def __init__(self, meta: dict[str, Any], pickled: memoryview, buffers: list[Any]) -> None:
        self.meta, self._pickle, self._buffers = meta, pickled, buffers

    def load(self) -> Any:
        """The value; raises what unpickling raises (a class that no longer exists, …)."""
        return pickle.loads(self._pickle, buffers=self._buffers)


def _tampered(what: str, path: str, reason: str) -> TamperedError:
    return TamperedError(
        f"{what} failed its integrity check: {reason}. It was changed after phasewise wrote "
        "it, or was written with another signing key; phasewise will not load it.",
        path, what)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the parts of a signed pickle lie: ``front`` bytes of magic, MAC, meta and
    pickle, then the buffers (``sizes``, ``kinds``), then the table (``tail`` bytes)."""

    front: int
    pickle_size: int
    sizes: tuple[int, ...]
    kinds: bytes
    tail: int


def _layout(size: int, read: Callable[[int, int], bytes], what: str, path: str) -> _Layout:
    """The layout a signed pickle of ``size`` bytes claims, from its table (``read(offset,
    n)``); ``TamperedError`` if it is not one. Trusted only once the MAC matches."""
    if size < _HEAD + _U32.size + _TAIL.size or read(0, len(MAGIC)) != MAGIC:
        raise _tampered(what, path, "it is not a signed phasewise pickle")
    count, pickle_size = _TAIL.unpack(read(size - _TAIL.size, _TAIL.size))
    tail = _TAIL.size + 9 * count
    if tail > size - _HEAD:
        raise _tampered(what, path, "its layout is inconsistent")
    table = read(size - tail, 9 * count)
    sizes = struct.unpack_from(f"<{count}Q", table)
    front = size - tail - sum(sizes)
    if front < _HEAD + _U32.size + pickle_size:
        raise _tampered(what, path, "its layout is inconsistent")
    return _Layout(front, pickle_size, sizes, bytes(table[8 * count:]), tail)


def _verified(front: memoryview, layout: _Layout, buffers: list[Any], mac: bytes,
              what: str, path: str) -> SignedData:
    if not hmac.compare_digest(front[len(MAGIC):_HEAD], mac):
        raise _tampered(what, path, "its HMAC does not match")
    meta_end = _HEAD + _U32.size + _U32.unpack_from(front, _HEAD)[0]
    if meta_end != layout.front - layout.pickle_size:
        raise _tampered(what, path, "its layout is inconsistent")
    meta = json.loads(bytes(front[_HEAD + _U32.size:meta_end]))
    return SignedData(meta, front[meta_end:layout.front], buffers)


def _open(data: BytesLike, what: str, path: str = "") -> SignedData:
    view = memoryview(data).cast("B")
    layout = _layout(len(view), lambda at, n: bytes(view[at:at + n]), what, path)
    buffers, offset = [], layout.front
    for size in layout.sizes:
        buffers.append(view[offset:offset + size])
        offset += size
    mac = hmac.new(signing_key(), view[_HEAD:], hashlib.sha256).digest()
    return _verified(view[:layout.front], layout, buffers, mac, what, path)


def load_signed(data: BytesLike, what: str = "a signed pickle") -> Any:
    """The value ``dump_signed`` made ``data`` from; ``TamperedError`` naming ``what`` if
    it does not verify."""
    return _open(data, what).load()


def open_signed(path: str | os.PathLike[str], what: str | None = None) -> SignedData:
    """Read ``path`` (after ``check_private``) and verify it; ``what`` names it in errors
    (default: the path). ``UnsafeStoreError`` if another user could have written it,
    ``TamperedError`` if it does not verify, ``OSError`` if it cannot be read.

    The file is read once, in order, its MAC made on a helper thread as it comes: large
    buffers into objects of their own (bytes, bytearray) or into one block of memory."""
    what = what or str(path)
    check_private(path, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = check_open(fd, path, what).st_size
        layout = _layout(size, lambda at, n: _pread(fd, n, at), what, str(path))
        shared = sum(n for n, kind in zip(layout.sizes, layout.kinds, strict=True)
                     if kind == _SHARED)
        reader = _Reader(fd, _buffer(layout.front + shared + layout.tail))
        try:
            front = reader.into_block(layout.front, skip=_HEAD)
            buffers = [reader.into_block(n) if kind == _SHARED else reader.own(n, kind)
                       for n, kind in zip(layout.sizes, layout.kinds, strict=True)]
            reader.into_block(layout.tail)
            mac = reader.mac.digest()
        finally:
            reader.mac.close()
    finally:
        os.close(fd)
    return _verified(front, layout, buffers, mac, what, str(path))


class _Reader:
    """Reads a file in order into ``block`` (or objects of its own), every byte after
    the first ``skip`` into the MAC."""

    def __init__(self, fd: int, block: bytearray | mmap.mmap) -> None:
        self.fd, self.view, self.at, self.mac = fd, memoryview(block), 0, _Mac()

    def into_block(self, n: int, skip: int = 0) -> memoryview:
        part = self.view[self.at:self.at + n]
        self.at += n
        done = 0
        while done < n:  # the MAC of each chunk is made while the next one is read
            got = os.readv(self.fd, [part[done:done + _CHUNK * 8]])
            if not got:
                raise EOFError("the file ended early")
            if done + got > skip:
                self.mac.update(part[max(done, skip):done + got])
            done += got
        return part

    def own(self, n: int, kind: int) -> bytes | bytearray:
        """The next ``n`` bytes as an object of their own: a bytearray, or bytes."""
        if kind == _OWN_BYTEARRAY:
            data = bytearray(n)
            view, done = memoryview(data), 0
            while done < n:
                got = os.readv(self.fd, [view[done:done + _CHUNK * 8]])
                if not got:
                    raise EOFError("the file ended early")
                self.mac.update(view[done:done + got])
                done += got
            return data
        whole = os.read(self.fd, n)
        if len(whole) < n:  # more than one read gives (2 GiB on Linux): put together
            pieces, total = [whole], len(whole)
            while total < n and (more := os.read(self.fd, n - total)):
                pieces.append(more)
                total += len(more)
            whole = b"".join(pieces)
        if len(whole) < n:
            raise EOFError("the file ended early")
        self.mac.update(memoryview(whole))
        return whole


def _pread(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) < n:
        raise EOFError("the file ended early")
    return data


def _buffer(size: int) -> bytearray | mmap.mmap:
    """Writable memory for ``size`` bytes about to be read. A large one is an anonymous
    mapping with its pages made at once (Linux): ``bytearray`` would fill it with zeros
    first, and faulting pages in one at a time during the read costs as much again."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if size < _OVERLAP or not populate:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)


def read_signed(path: str | os.PathLike[str], what: str | None = None) -> Any:
    """``open_signed(path, what).load()``: the value stored at ``path``."""
    return open_signed(path, what).load()


def read_signed_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta`` stored with the signed pickle at ``path``, read without verifying
    anything (JSON only, nothing is unpickled): for listings. ``TamperedError`` if it is
    not a signed pickle."""
    with open(path, "rb") as source:
        head = source.read(_HEAD + _U32.size)
        if len(head) < _HEAD + _U32.size or head[:len(MAGIC)] != MAGIC:
            raise _tampered(str(path), str(path), "it is not a signed phasewise pickle")
        meta_size = _U32.unpack_from(head, _HEAD)[0]
        raw = source.read(meta_size) if meta_size <= _MAX_META else b""
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise _tampered(str(path), str(path), "its header is unreadable")
    return meta

