"""capture_thread_output: per-thread capture of sys.stdout / sys.stderr."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from phasewise.core.wire import Log
from phasewise.executors.capture import LineSplitter, capture_thread_output

pytestmark = pytest.mark.timeout(30)


class Sink:
    """Collects emitted Log events; thread-safe."""

    def __init__(self) -> None:
        self.events: list[Log] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def lines(self, stream: str | None = None) -> list[str]:
        return [line for e in self.events if stream in (None, e.stream) for line in e.lines]


def test_lines_are_split_and_tagged_by_stream() -> None:
    sink = Sink()
    with capture_thread_output(sink):
        print("one")
        sys.stdout.write("two\nthree\n")
        print("oops", file=sys.stderr)
    assert sink.lines("stdout") == ["one", "two", "three"]
    assert sink.lines("stderr") == ["oops"]
    assert all(isinstance(e, Log) for e in sink.events)


def test_partial_lines_are_joined_and_flushed_at_the_end() -> None:
    sink = Sink()
    with capture_thread_output(sink):
        sys.stdout.write("hel")
        sys.stdout.write("lo\nwor")
        sys.stdout.write("ld")
        sys.stderr.write("no newline")
    assert sink.lines("stdout") == ["hello", "world"]
    assert sink.lines("stderr") == ["no newline"]


def test_crlf_and_empty_lines() -> None:
    sink = Sink()
    with capture_thread_output(sink):
        sys.stdout.write("a\r\n\nb\n")
    assert sink.lines() == ["a", "", "b"]


def test_sys_stdout_and_stderr_are_restored_afterwards() -> None:
    out, err = sys.stdout, sys.stderr
    with capture_thread_output(Sink()):
        assert sys.stdout is not out
    assert sys.stdout is out
    assert sys.stderr is err


def test_streams_are_restored_when_the_body_raises() -> None:
    out, err = sys.stdout, sys.stderr
    sink = Sink()
    with pytest.raises(ZeroDivisionError), capture_thread_output(sink):
        print("before")
        1 / 0  # noqa: B018
    assert sys.stdout is out
    assert sys.stderr is err
    assert sink.lines() == ["before"]


def test_a_replacement_installed_meanwhile_is_left_alone() -> None:
    out = sys.stdout
    replacement = Sink()  # anything with write()
    try:
        with capture_thread_output(Sink()):
            sys.stdout = replacement  # type: ignore[assignment]
        assert sys.stdout is replacement
    finally:
        sys.stdout = out


def test_two_threads_never_see_each_others_lines() -> None:
    sinks = {"a": Sink(), "b": Sink()}
    barrier = threading.Barrier(2, timeout=10)
    n = 300

    def work(tag: str) -> None:
        with capture_thread_output(sinks[tag]):
            barrier.wait()  # both capture at once
            for i in range(n):
                print(f"{tag} {i}")
            barrier.wait()  # neither leaves before the other is done

    threads = [threading.Thread(target=work, args=(t,)) for t in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag, sink in sinks.items():
        assert sink.lines() == [f"{tag} {i}" for i in range(n)]


def test_other_threads_pass_through_while_one_captures(capsys) -> None:
    sink = Sink()
    inside, outside_done = threading.Event(), threading.Event()

    def bystander() -> None:
        inside.wait(10)
        print("bystander line")
        outside_done.set()

    other = threading.Thread(target=bystander)
    other.start()
    with capture_thread_output(sink):
        inside.set()
        assert outside_done.wait(10)
        print("captured line")
    other.join()
    assert sink.lines() == ["captured line"]
    assert "bystander line" in capsys.readouterr().out


def test_overlapping_captures_restore_only_when_the_last_one_ends() -> None:
    out = sys.stdout
    first_in, second_done = threading.Event(), threading.Event()
    sink_a, sink_b = Sink(), Sink()

    def second() -> None:
        first_in.wait(10)
        with capture_thread_output(sink_b):
            print("from b")
        second_done.set()

    t = threading.Thread(target=second)
    t.start()
    with capture_thread_output(sink_a):
        first_in.set()
        assert second_done.wait(10)
        assert sys.stdout is not out  # a still captures
        print("from a")
    t.join()
    assert sys.stdout is out
    assert sink_a.lines() == ["from a"]
    assert sink_b.lines() == ["from b"]


def test_line_splitter_directly() -> None:
    sink = Sink()
    splitter = LineSplitter("stderr", sink)
    splitter.write("x")
    assert sink.events == []
    splitter.write("y\nz")
    splitter.close()
    splitter.close()  # idempotent
    assert sink.lines("stderr") == ["xy", "z"]
