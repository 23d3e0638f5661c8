"""The worker loop (``phasewise.executors.worker.serve``) over real pipes.

Tasks that do not capture run ``serve`` in a thread of this process. Tasks that capture
output redirect file descriptors 1 and 2 of the whole process, so they run ``serve`` in
a child interpreter, which reads its handlers by value (this module is not importable
there).
"""

from __future__ import annotations

import mmap
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from phasewise.core import framing, wire
from phasewise.core.task import Task
from phasewise.executors._pickling import load_result
from phasewise.executors._pickling import run_frame as executor_run_frame
from phasewise.executors.worker import MAX_LINE, serve

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(30)


# ── handlers (module level: they are cloudpickled) ──────────────────────────


def add(a: int, b: int) -> int:
    return a + b


def with_context(context: dict[str, Any]) -> Any:
    return sorted(context.items())


def failing_handler() -> None:
    raise ValueError("the handler's own message")


def nested_failure() -> None:
    _helper_that_raises()


def _helper_that_raises() -> None:
    raise KeyError("deep")


def returns_lock() -> Any:
    return threading.Lock()


class Columns:
    """Pickles (protocol 5) its columns as out-of-band buffers, as numpy arrays do."""

    def __init__(self, *columns: Any) -> None:
        self.columns = columns

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Columns, tuple(pickle.PickleBuffer(c) for c in self.columns)


def columns(*sizes: int) -> Columns:
    return Columns(*(bytearray([i % 256]) * size for i, size in enumerate(sizes)))


def over_the_frame_limit() -> Columns:
    """A column one byte over what a frame carries: address space only, never read."""
    return Columns(memoryview(mmap.mmap(-1, wire.MAX_FRAME + 1, prot=mmap.PROT_READ)))


def chatty() -> str:
    print("out one")
    print("err one", file=sys.stderr)
    os.write(1, b"fd-level line\n")
    print("out two")
    return "done"


def no_trailing_newline() -> int:
    sys.stdout.write("first\nlast without newline")
    return 7


def waits_for_file(path: str) -> str:
    print("started", flush=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


def undecodable() -> None:
    os.write(1, b"ok \xff\xfe bad\n")


def long_line(n: int) -> None:
    os.write(1, b"x" * n + b"\n")


def crlf() -> None:
    os.write(1, b"windows\r\nline\r\n")


# ── driving serve() ─────────────────────────────────────────────────────────


def run_frame(phase: str, handler: Callable[..., Any], context: Any = None, *,
              capture: bool = False) -> bytes:
    """The Run frame an executor sends for this task (no context: empty context bytes)."""
    frame = executor_run_frame(Task(phase, handler, context, capture_output=capture))
    assert isinstance(frame, bytes), frame
    return frame


def read_all(fd: int) -> list[wire.Message]:
    reader, messages = framing.MessageReader(), []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        messages.extend(reader.feed(chunk))
    assert reader.pending == 0
    return messages


def serve_in_thread(*frames: bytes) -> list[wire.Message]:
    """Run ``serve`` in a thread over two pipes; send ``frames``, then EOF."""
    task_r, task_w = os.pipe()
    result_r, result_w = os.pipe()

    def target() -> None:
        try:
            serve(task_r, result_w)
        finally:
            os.close(task_r)
            os.close(result_w)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    for frame in frames:
        os.write(task_w, frame)
    os.close(task_w)
    try:
        messages = read_all(result_r)
    finally:
        os.close(result_r)
    thread.join(10)
    assert not thread.is_alive()
    return messages


_SERVE_CODE = "import sys; from phasewise.executors.worker import serve; " \
              "serve(int(sys.argv[1]), int(sys.argv[2]))"


@pytest.fixture
def child() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int, int]]]:
    """``start(module_main=False) -> (process, task_write_fd, result_read_fd)``."""
    started: list[tuple[subprocess.Popen[bytes], int, int]] = []

    def start(module_main: bool = False) -> tuple[subprocess.Popen[bytes], int, int]:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        argv = ([sys.executable, "-m", "phasewise.executors.worker"] if module_main
                else [sys.executable, "-c", _SERVE_CODE])
        process = subprocess.Popen([*argv, str(task_r), str(result_w)],
                                   pass_fds=(task_r, result_w), stdin=subprocess.DEVNULL)
        os.close(task_r)
        os.close(result_w)
        started.append((process, task_w, result_r))
        return process, task_w, result_r

    yield start
    for process, task_w, result_r in started:
        for fd in (task_w, result_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if process.poll() is None:
            process.kill()
        process.wait(10)


def serve_in_child(start: Callable[..., Any], *frames: bytes) -> list[wire.Message]:
    process, task_w, result_r = start()
    for frame in frames:
        os.write(task_w, frame)
    os.close(task_w)
    messages = read_all(result_r)
    assert process.wait(10) == 0
    return messages


def logs(messages: list[wire.Message], stream: str | None = None) -> list[str]:
    return [line for m in messages if isinstance(m, wire.Log)
            and (stream is None or m.stream == stream) for line in m.lines]


def value(message: wire.Message) -> Any:
    assert isinstance(message, wire.Result), message
    return load_result(message)


# ── Run → Result / Error ────────────────────────────────────────────────────


def test_a_large_result_comes_back_in_blocks_and_intact() -> None:
    from functools import partial

    sizes = (3 << 20, 10, 200_000)
    (reply,) = serve_in_thread(run_frame("big", partial(columns, *sizes)))
    assert isinstance(reply, wire.Result)
    assert len(reply.buffers) == 2  # the large columns; the small one stays in the pickle
    got = value(reply)
    assert [bytes(c) for c in got.columns] == [bytes(c) for c in columns(*sizes).columns]


def test_a_result_too_large_for_the_wire_is_an_error_not_a_dead_worker() -> None:
    reply, after = serve_in_thread(run_frame("huge", over_the_frame_limit),
                                   run_frame("add", partial(add, 1, 2)))
    assert isinstance(reply, wire.Error)
    assert reply.type == "SerializationError"
    assert "'huge'" in reply.message
    assert "more than a frame carries" in reply.message
    assert value(after) == 3


def test_run_returns_a_result_frame() -> None:
    from functools import partial

    (reply,) = serve_in_thread(run_frame("add", partial(add, 2, 3)))
    assert value(reply) == 5


def test_context_reaches_the_handler() -> None:
    (reply,) = serve_in_thread(run_frame("ctx", with_context, {"b": 2, "a": None}))
    assert value(reply) == [("a", None), ("b", 2)]


def test_several_tasks_on_one_pipe_answer_in_order() -> None:
    from functools import partial

    replies = serve_in_thread(*(run_frame(f"p{i}", partial(add, i, i)) for i in range(5)))
    assert [value(r) for r in replies] == [0, 2, 4, 6, 8]


def test_serve_returns_at_eof_without_a_task() -> None:
    assert serve_in_thread() == []


def test_handler_error_becomes_an_error_frame_with_its_traceback() -> None:
    (reply,) = serve_in_thread(run_frame("boom", failing_handler))
    assert isinstance(reply, wire.Error)
    assert reply.type == "ValueError"
    assert reply.message == "the handler's own message"
    assert "failing_handler" in reply.traceback
    # pickled by value, and still pointing at this file (cloudpickle 3.1.3 renames it)
    assert f'File "{__file__}"' in reply.traceback
    assert 'raise ValueError("the handler\'s own message")' in reply.traceback
    assert reply.traceback.rstrip().endswith("ValueError: the handler's own message")


def test_traceback_shows_the_handler_frames_not_the_worker_frames() -> None:
    (reply,) = serve_in_thread(run_frame("deep", nested_failure))
    assert isinstance(reply, wire.Error)
    assert reply.type == "KeyError"
    assert "nested_failure" in reply.traceback
    assert "_helper_that_raises" in reply.traceback
    assert os.path.join("phasewise", "executors", "worker.py") not in reply.traceback
    assert "call_handler" not in reply.traceback


def test_an_error_does_not_stop_the_worker() -> None:
    from functools import partial

    first, second = serve_in_thread(run_frame("boom", failing_handler),
                                    run_frame("ok", partial(add, 1, 1)))
    assert isinstance(first, wire.Error)
    assert value(second) == 2


def test_unpicklable_result_is_an_error_naming_the_phase() -> None:
    (reply,) = serve_in_thread(run_frame("locky", returns_lock))
    assert isinstance(reply, wire.Error)
    assert reply.type == "SerializationError"
    assert "'locky'" in reply.message
    assert "cannot be pickled" in reply.message


def test_a_payload_that_cannot_be_unpickled_is_an_error() -> None:
    frame = wire.encode(wire.Run("garbled", b"not a pickle", b"", False))
    (reply,) = serve_in_thread(frame)
    assert isinstance(reply, wire.Error)
    assert reply.type == "SerializationError"
    assert "'garbled'" in reply.message


# ── capture (in a child interpreter: fd 1 and 2 are redirected) ─────────────


def test_captured_lines_arrive_as_log_frames_before_the_result(child: Any) -> None:
    messages = serve_in_child(child, run_frame("chatty", chatty, capture=True))
    assert isinstance(messages[-1], wire.Result)
    assert value(messages[-1]) == "done"
    assert all(isinstance(m, wire.Log) for m in messages[:-1])
    assert logs(messages, "stdout") == ["out one", "fd-level line", "out two"]
    assert logs(messages, "stderr") == ["err one"]
    for m in messages[:-1]:
        assert isinstance(m, wire.Log)
        assert m.stream in ("stdout", "stderr")
        assert m.timestamp > 0


def test_a_last_line_without_newline_is_still_delivered(child: Any) -> None:
    messages = serve_in_child(child, run_frame("partial", no_trailing_newline, capture=True))
    assert logs(messages, "stdout") == ["first", "last without newline"]
    assert value(messages[-1]) == 7


def test_without_capture_no_log_frames_are_sent(child: Any) -> None:
    messages = serve_in_child(child, run_frame("quiet", chatty, capture=False))
    assert len(messages) == 1
    assert value(messages[0]) == "done"


def test_undecodable_bytes_become_replacement_characters(child: Any) -> None:
    messages = serve_in_child(child, run_frame("bytes", undecodable, capture=True))
    assert logs(messages) == ["ok \ufffd\ufffd bad"]


def test_an_over_long_line_is_split_not_dropped(child: Any) -> None:
    from functools import partial

    n = 3 * MAX_LINE + 123
    messages = serve_in_child(child, run_frame("long", partial(long_line, n), capture=True))
    lines = logs(messages)
    assert len(lines) >= 4
    assert all(len(line) <= MAX_LINE for line in lines)
    assert "".join(lines) == "x" * n


def test_carriage_returns_before_newlines_are_dropped(child: Any) -> None:
    messages = serve_in_child(child, run_frame("crlf", crlf, capture=True))
    assert logs(messages) == ["windows", "line"]


def test_lines_stream_while_the_handler_still_runs(child: Any, tmp_path: Path) -> None:
    from functools import partial

    release = tmp_path / "release"
    process, task_w, result_r = child(module_main=True)
    os.write(task_w, run_frame("live", partial(waits_for_file, str(release)), capture=True))
    os.close(task_w)
    reader = framing.FrameReader()
    # the handler blocks until we create the file: its line must arrive before that
    first: list[wire.Message] = []
    while not first:
        chunk = os.read(result_r, 1 << 16)
        assert chunk, "the worker closed its pipe before sending the line"
        first = [wire.decode(b) for b in reader.feed(chunk)]
    assert isinstance(first[0], wire.Log)
    assert first[0].lines == ["started"]
    release.touch()
    rest = first[1:] + read_all(result_r)
    assert value(rest[-1]) == "released"
    assert process.wait(10) == 0


def test_module_main_rejects_bad_arguments() -> None:
    done = subprocess.run([sys.executable, "-m", "phasewise.executors.worker"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "usage" in done.stderr
