"""Issue 9: the result cache's two large-data paths, each next to its raw primitive.

* ``cache_key`` of a phase whose input is a ``--mb`` MB ``bytearray`` (and a numpy array,
  if numpy is installed) vs ``hashlib.sha256`` over the same raw bytes: target within
  1.5x.
* ``signing.write_signed`` / ``read_signed`` of a ``--mb`` MB value (``bytes``,
  ``bytearray``; a numpy array if installed, else a protocol-5 out-of-band object) vs
  a ``dd``-like raw write (one write, fsync) and read (into one buffer) of the same
  bytes in the same directory: target at least 0.5x. Reads are timed warm (page cache)
  and cold (the file's pages dropped first with ``posix_fadvise``, where that exists),
  so the disk is measured too.

Best of ``--repeats``, contenders interleaved. The signing key is a temporary one
(``PHASEWISE_KEY_FILE``): the bench never touches ``~/.config``.

    python bench/cache_key.py [--mb 100] [--repeats 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchutil import fmt, print_header, table, verdict


class Blob:
    """A numpy-like value without numpy: its bytes go out of band (pickle protocol 5)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Blob, (pickle.PickleBuffer(self.data),)


def _handler(context: Any) -> int:
    return len(context["data"])


def _best(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each contender's best time; each call returns its own elapsed seconds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: min(values) for name, values in times.items()}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _drop_cache(path: Path) -> bool:
    """Drop ``path``'s pages from the page cache (they are clean: written and fsync'd)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def _raw_write(path: Path, data: Any) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _raw_read(path: Path) -> bytearray:
    size = path.stat().st_size
    buffer = bytearray(size)
    with open(path, "rb", buffering=0) as source:
        view, done = memoryview(buffer), 0
        while done < size:
            got = source.readinto(view[done:])
            if not got:
                break
            done += got
    return buffer


def _key_rows(mb: int, repeats: int) -> list[list[str]]:
    from phasewise import Phase
    from phasewise.durable.cache import cache_key

    size = mb << 20
    phase = Phase("big", _handler)
    inputs: dict[str, Any] = {"bytearray": bytearray(os.urandom(1 << 20)) * mb}
    try:
        import numpy as np

        inputs["numpy float64"] = np.random.default_rng(0).random(size // 8)
    except ImportError:
        inputs["out-of-band object (no numpy)"] = Blob(bytearray(inputs["bytearray"]))
    rows = []
    for label, value in inputs.items():
        raw = memoryview(value).cast("B") if not isinstance(value, Blob) else value.data
        best = _best({
            "key": functools.partial(_timed, functools.partial(cache_key, phase,
                                                               {"data": value})),
            "sha": functools.partial(_timed, functools.partial(hashlib.sha256, raw)),
        }, repeats)
        ratio = best["key"] / best["sha"]
        rows.append([f"cache_key, {mb} MB {label} input", fmt(best["key"] * 1e3),
                     fmt(best["sha"] * 1e3), f"{fmt(ratio)}x", "<= 1.5x",
                     verdict(ratio <= 1.5)])
    return rows


def _store_rows(root: Path, mb: int, repeats: int) -> list[list[str]]:
    from phasewise.durable.signing import read_signed, write_signed

    size = mb << 20
    values: dict[str, tuple[Any, Any]] = {}  # label -> (value, its raw bytes)
    payload = bytes(os.urandom(1 << 20)) * mb
    values["bytes"] = (payload, payload)
    values["bytearray"] = (bytearray(payload), payload)
    try:
        import numpy as np

        array = np.random.default_rng(1).random(size // 8)
        values["numpy float64"] = (array, memoryview(array).cast("B"))  # type: ignore[arg-type]
    except ImportError:
        blob = bytearray(payload)
        values["out-of-band object (no numpy)"] = (Blob(blob), blob)
    raw_path, ours_path = root / "raw.bin", root / "signed.pkl"
    cold = hasattr(os, "posix_fadvise")
    rows = []
    for label, (value, raw) in values.items():
        def cold_read(path: Path, read: Callable[[Path], Any]) -> float:
            _drop_cache(path)
            return _timed(lambda: read(path))

        best = _best({
            "raw write": functools.partial(_timed, functools.partial(_raw_write, raw_path, raw)),
            "our write": functools.partial(_timed, functools.partial(write_signed, ours_path,
                                                                     value)),
            "raw read": lambda: _timed(lambda: _raw_read(raw_path)),
            "our read": lambda: _timed(lambda: read_signed(ours_path)),
            **({"raw cold read": lambda: cold_read(raw_path, _raw_read),
                "our cold read": lambda: cold_read(ours_path, read_signed)} if cold else {}),
        }, repeats)
        for what in ("write", "read", "cold read"):
            if f"raw {what}" not in best:
                continue
            ours, raw_time = best[f"our {what}"], best[f"raw {what}"]
            speed = raw_time / ours
            rows.append([f"{what} signed vs raw, {mb} MB {label}",
                         f"{fmt(ours * 1e3)} ({fmt(size / ours / 1e9)} GB/s)",
                         f"{fmt(raw_time * 1e3)} ({fmt(size / raw_time / 1e9)} GB/s)",
                         f"{fmt(speed)}x speed", ">= 0.5x", verdict(speed >= 0.5)])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="value size in MB (MiB)")
    parser.add_argument("--repeats", type=int, default=5, help="best of N")
    parser.add_argument("--dir", default=None,
                        help="where to write (default: a temporary folder here)")
    args = parser.parse_args(argv)
    print_header(f"result cache: cache_key and signed files, {args.mb} MB", argv)
    root = Path(tempfile.mkdtemp(prefix="phasewise-bench-", dir=args.dir or os.getcwd()))
    os.chmod(root, 0o700)
    os.environ["PHASEWISE_KEY_FILE"] = str(root / "key")
    try:
        rows = _key_rows(args.mb, args.repeats) + _store_rows(root, args.mb, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(table(["measure", "phasewise ms", "raw primitive ms", "ratio", "target",
                 "verdict"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
