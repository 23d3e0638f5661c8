"""Issue 9: what keeping a run in a work directory costs.

* 10,000 no-op phases on ``inline``, with a work directory and without, in one run:
  target at most 2x.
* Resuming that run once every phase completed: the time to decide that nothing runs
  (``Pipeline.run(workdir=..., resume=True)`` whole): target under 0.5 s.
* Keeping and loading a 100 MB result (``numpy`` array if installed, else a bytearray):
  the result store's write/read speed next to a plain sequential write/read of the same
  bytes in the same directory (``dd``-like, fsync'd): target at least 0.5x.

    python bench/durable.py [--phases 10000] [--repeats 3] [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchutil import best_of, fmt, print_header, table, verdict
from scale import make_phases

from phasewise import Pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args(argv)
    print_header("Work directory (issue 9)", argv)
    root = Path(tempfile.mkdtemp(prefix="phasewise-bench-", dir=os.getcwd()))
    try:
        rows = _runs(root, args.phases, args.repeats)
        rows += _large(root, args.mb, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(table(("measure", "value", "target", "verdict"), rows))


def _runs(root: Path, n: int, repeats: int) -> list[tuple[str, str, str, str]]:
    pipeline = Pipeline("durable", *make_phases(n, 100))
    pipeline.run(executor="inline")  # warm-up: plan and reducer are made once

    def plain() -> float:
        t0 = time.perf_counter()
        result = pipeline.run(executor="inline")
        took = time.perf_counter() - t0
        assert result.ok
        return took

    def kept() -> float:
        place = root / f"w{time.monotonic_ns()}"
        t0 = time.perf_counter()
        result = pipeline.run(executor="inline", workdir=place)
        took = time.perf_counter() - t0
        assert result.ok
        return took

    without, with_workdir = best_of(plain, repeats), best_of(kept, repeats)
    place = root / "resume"
    pipeline.run(executor="inline", workdir=place)

    def resume() -> float:
        t0 = time.perf_counter()
        result = pipeline.run(executor="inline", workdir=place, resume=True)
        took = time.perf_counter() - t0
        assert result.ok
        return took

    resumed = best_of(resume, repeats)
    ratio = with_workdir / without
    return [
        (f"{n:,} no-op phases, inline, no workdir", f"{fmt(without)} s", "", ""),
        (f"{n:,} no-op phases, inline, with a workdir", f"{fmt(with_workdir)} s", "", ""),
        ("... ratio", f"{ratio:.2f}x", "<= 2x", verdict(ratio <= 2)),
        (f"resume of {n:,} completed phases (whole run)", f"{fmt(resumed)} s", "< 0.5 s",
         verdict(resumed < 0.5)),
    ]


def _value(mb: int) -> object:
    try:
        import numpy

        return numpy.arange(mb * (1 << 20) // 8, dtype=numpy.int64)
    except ImportError:
        return bytearray(os.urandom(1 << 20)) * mb


def _large(root: Path, mb: int, repeats: int) -> list[tuple[str, str, str, str]]:
    from phasewise.durable.results import load_result, store_result
    from phasewise.durable.workdir import Workdir

    value = _value(mb)
    raw = memoryview(value).cast("B")  # type: ignore[arg-type]
    size = raw.nbytes
    place = Workdir(root / "large")
    place.create()
    plain = root / "plain.bin"

    def dd_write() -> float:
        t0 = time.perf_counter()
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        view = raw
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        return time.perf_counter() - t0

    def dd_read() -> float:
        t0 = time.perf_counter()
        with open(plain, "rb") as f:
            buffer = bytearray(size)
            f.readinto(buffer)
        return time.perf_counter() - t0

    refs: list[dict[str, str]] = []

    def store() -> float:
        t0 = time.perf_counter()
        refs.append(store_result(place, "large", value))
        return time.perf_counter() - t0

    def load() -> float:
        t0 = time.perf_counter()
        got = load_result(place, refs[-1])
        took = time.perf_counter() - t0
        assert memoryview(got).nbytes == size  # type: ignore[arg-type]
        return took

    w_raw, r_raw = best_of(dd_write, repeats), best_of(dd_read, repeats)
    w, r = best_of(store, repeats), best_of(load, repeats)
    mbs = size / (1 << 20)
    return [
        (f"write {mbs:.0f} MB: plain (fsync'd)", f"{mbs / w_raw:.0f} MB/s", "", ""),
        (f"write {mbs:.0f} MB: result store", f"{mbs / w:.0f} MB/s", ">= 0.5x plain",
         verdict(w_raw / w >= 0.5)),
        (f"read {mbs:.0f} MB: plain", f"{mbs / r_raw:.0f} MB/s", "", ""),
        (f"read {mbs:.0f} MB: result store", f"{mbs / r:.0f} MB/s", ">= 0.5x plain",
         verdict(r_raw / r >= 0.5)),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
