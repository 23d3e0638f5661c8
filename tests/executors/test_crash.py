"""The crash matrix: what happens when a phase's worker dies, hangs, floods or cannot be fed.

Every case runs on ``process`` and ``subprocess`` with a hard deadline, and afterwards
the same executor must still run a fresh pipeline and no process started by the test
may be left: neither a descendant of this process (found through /proc) nor an orphan
(every process started during a test carries a marker in its environment).

Real processes, real pipes, real signals; nothing is mocked.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from processes import all_pids, describe, marked, pid_is_gone, proc_stat, wait_until_gone

from phasewise import Phase, PhasePolicy, Pipeline, PipelineResult
from phasewise.core import actions as A
from phasewise.core.errors import WorkerDied
from phasewise.core.task import Task
from phasewise.executors import ProcessExecutor

# The subprocess executor's fresh interpreters cannot import this test module by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.usefixtures("no_process_left")

EXECUTORS = ["process", "subprocess"]


# ── handlers (module level, pickled by value) ───────────────────────────────


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def exit_3() -> None:
    os._exit(3)


def segfault() -> None:
    ctypes.string_at(0)


def hang_with_child(pid_file: str) -> None:
    child = subprocess.Popen(["sleep", "60"])
    Path(pid_file + ".tmp").write_text(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(60)


def make_lock() -> Any:
    return threading.Lock()


def takes_context(context: dict[str, Any]) -> str:
    return "never"


def flood(n: int) -> int:
    for i in range(n):
        print(f"line {i}")
    return n


def undecodable() -> str:
    os.write(1, b"ok \xff\xfe bad\n")
    return "ok"


def over_long(text: str) -> int:
    os.write(1, text.encode() + b"\n")
    return len(text)


def shell_echo() -> int:
    return os.system("echo from-shell")


def to_stderr() -> None:
    print("printed to stderr", file=sys.stderr)
    os.write(2, b"written to fd 2\n")
    print("printed to stdout")


def times_out_once(marker: str) -> str:
    if os.path.exists(marker):
        return "second try"
    Path(marker).touch()
    time.sleep(60)
    return "first try"


def prints_then_dies() -> None:
    import fcntl
    import termios

    print("last words", flush=True)
    unread = bytearray(4)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until the worker's pump has read the line…
        fcntl.ioctl(1, termios.FIONREAD, unread)
        if not int.from_bytes(unread, sys.byteorder):
            break
        time.sleep(0.01)
    time.sleep(0.1)  # …and sent it on
    os.kill(os.getpid(), signal.SIGKILL)


def result_fd() -> int:
    """The worker's end of the pipe its frames go to, found in ``serve``'s frame."""
    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "serve":
        frame = frame.f_back
    assert frame is not None, "not running under phasewise.executors.worker.serve"
    return int(frame.f_locals["write_fd"])


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def malformed_frame() -> None:
    os.write(result_fd(), b"\x00\x00\x00\x02\xc1\xc1")
    time.sleep(10)


def large_result_frames(size: int) -> bytes:
    """A Result with one out-of-band buffer of ``size`` bytes, as the worker sends it."""
    from phasewise.core import framing, wire

    parts = framing.encode_parts(wire.Result(pickle.dumps(None), (bytes(size),)))
    return b"".join(bytes(part) for part in parts)


def dies_sending_a_large_result(size: int, sent: int) -> None:
    """Sends the first ``sent`` bytes of a large result, then dies."""
    write_all(result_fd(), large_result_frames(size)[:sent])
    os.kill(os.getpid(), signal.SIGKILL)


def sends_a_block_of_the_wrong_size(size: int) -> None:
    frames = large_result_frames(size)
    head = frames[: len(frames) - size - 4]  # all but the buffer's frame
    write_all(result_fd(), head + struct.pack(">I", 3) + b"abc")
    time.sleep(10)


def getpid() -> int:
    return os.getpid()


def getpid_after(pid_file: str, context: dict[str, Any]) -> int:
    return os.getpid()


def write_pid_and_die(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def pid_once_there(path: str) -> int:
    """This worker's pid, once ``path`` exists (another phase wrote it, at the same time)."""
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def one() -> int:
    return 1


def plus_one(context: dict[str, Any]) -> int:
    return context["one"] + 1


# ── helpers ─────────────────────────────────────────────────────────────────


def status(result: PipelineResult, name: str) -> Any:
    (phase,) = [p for p in result.state.phases if p.name == name]
    return phase


def run_one(executor: str, phase: Phase, **pipeline_kwargs: Any) -> PipelineResult:
    return Pipeline("crash", phase, **pipeline_kwargs).run(executor=executor)


def assert_failed(result: PipelineResult, name: str, *fragments: str) -> str:
    phase = status(result, name)
    assert result.status == "failed"
    assert phase.status == "failed"
    error = phase.error or ""
    assert repr(name) in error, error
    for fragment in fragments:
        assert fragment in error, error
    return error


def assert_still_works(executor: str) -> None:
    """A fresh two-phase pipeline on the same executor completes."""
    result = Pipeline(
        "after", Phase("one", one), Phase("two", plus_one, depends_on=["one"])
    ).run(executor=executor)
    assert result.ok, result.state
    assert result.results == {"one": 1, "two": 2}


def log_lines(result: PipelineResult, name: str, stream: str | None = None) -> list[str]:
    return [log.line for log in status(result, name).logs
            if stream is None or log.stream == stream]


crash = pytest.mark.parametrize("executor", EXECUTORS)
deadline = pytest.mark.timeout(30)


# ── dead workers ────────────────────────────────────────────────────────────


@deadline
@crash
def test_sigkill(executor: str) -> None:
    result = run_one(executor, Phase("victim", sigkill_self))
    error = assert_failed(result, "victim", "SIGKILL")
    assert "out of memory" in error
    assert_still_works(executor)


@deadline
@crash
def test_os_exit(executor: str) -> None:
    result = run_one(executor, Phase("quitter", exit_3))
    assert_failed(result, "quitter", "exited with code 3")
    assert_still_works(executor)


@deadline
@crash
def test_segfault(executor: str) -> None:
    result = run_one(executor, Phase("crasher", segfault))
    error = assert_failed(result, "crasher", "SIGSEGV")
    assert "out of memory" not in error
    assert_still_works(executor)


@deadline
@crash
def test_lines_sent_before_death_are_kept(executor: str) -> None:
    result = run_one(executor, Phase("dying", prints_then_dies), capture_output=True)
    assert_failed(result, "dying", "SIGKILL")
    assert log_lines(result, "dying") == ["last words"]
    assert_still_works(executor)


@deadline
@crash
def test_malformed_frame_fails_the_task_with_a_clear_error(executor: str) -> None:
    started = time.monotonic()
    result = run_one(executor, Phase("garbler", malformed_frame))
    assert_failed(result, "garbler", "malformed frame")
    assert time.monotonic() - started < 8, "the run waited for the worker instead of failing"
    assert_still_works(executor)


@deadline
@crash
def test_death_in_the_middle_of_a_large_result_names_the_signal(executor: str) -> None:
    size, sent = 8 << 20, 3 << 20
    phase = Phase("halfway", functools.partial(dies_sending_a_large_result, size, sent))
    result = run_one(executor, phase)
    assert_failed(result, "halfway", "SIGKILL",
                  f"it had sent {sent} of the {len(large_result_frames(size))} bytes")
    assert_still_works(executor)


@deadline
@crash
def test_a_result_block_of_the_wrong_size_fails_the_task_with_a_clear_error(
        executor: str) -> None:
    started = time.monotonic()
    result = run_one(executor, Phase("misfit", functools.partial(
        sends_a_block_of_the_wrong_size, 1 << 20)))
    assert_failed(result, "misfit", "malformed frame", "of 1048576 bytes, was due")
    assert time.monotonic() - started < 8, "the run waited for the worker instead of failing"
    assert_still_works(executor)


# ── hangs ───────────────────────────────────────────────────────────────────


@deadline
@crash
def test_timeout(executor: str) -> None:
    started = time.monotonic()
    result = run_one(executor, Phase("hanger", functools.partial(time.sleep, 60), timeout=0.5))
    assert_failed(result, "hanger", "timed out after 0.5 s")
    assert time.monotonic() - started < 20
    assert_still_works(executor)


@deadline
@crash
def test_timeout_kills_the_worker_and_its_children(executor: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # long enough for a fresh interpreter to start the child even on a loaded machine
    phase = Phase("hanger", functools.partial(hang_with_child, str(pid_file)), timeout=1.5)
    result = run_one(executor, phase)
    assert_failed(result, "hanger", "timed out after 1.5 s")
    child = int(pid_file.read_text())
    assert pid_is_gone(child), f"the handler's child {child} outlived the timeout"
    assert_still_works(executor)


@deadline
@crash
def test_retry_policy_applies_to_a_timeout(executor: str, tmp_path: Path,
                                          recording_store: Any) -> None:
    phase = Phase("flaky", functools.partial(times_out_once, str(tmp_path / "tried")),
                  timeout=1.5, policy=PhasePolicy(on_fail="retry", max_retries=1,
                                                  retry_delay=0.01))
    pipeline = Pipeline("retry", phase)
    store, actions = recording_store(pipeline)
    result = pipeline.run(executor=executor, store=store)
    assert result.ok, result.state
    assert result.results == {"flaky": "second try"}
    assert status(result, "flaky").attempt == 2
    (retry,) = [a for a in actions if a.type == A.PHASE_RETRY]
    assert retry.payload["attempt"] == 2
    assert "timed out after 1.5 s" in retry.payload["error"]
    assert_still_works(executor)


# ── what cannot be pickled ──────────────────────────────────────────────────


@deadline
@crash
def test_unpicklable_handler(executor: str, tmp_path: Path) -> None:
    lock = threading.Lock()
    marker = tmp_path / "ran"
    pipeline = Pipeline(
        "p",
        Phase("early", functools.partial(Path.touch, marker)),
        Phase("locked", lambda: lock),
    )
    result = pipeline.run(executor=executor)
    assert_failed(result, "locked", "cannot be pickled", "lock")
    assert not marker.exists(), "a phase ran although another could not be sent"
    assert_still_works(executor)


@deadline
@crash
def test_unpicklable_result(executor: str) -> None:
    result = run_one(executor, Phase("locksmith", make_lock))
    assert_failed(result, "locksmith", "cannot be pickled")
    assert_still_works(executor)


@deadline
@crash
def test_unpicklable_context(executor: str) -> None:
    pipeline = Pipeline(
        "p",
        Phase("first", make_lock, executor="thread"),
        Phase("second", takes_context, depends_on=["first"]),
    )
    result = pipeline.run(executor=executor)
    assert status(result, "first").status == "completed"
    assert_failed(result, "second", "context['first']", "cannot be pickled")
    assert_still_works(executor)


# ── output ──────────────────────────────────────────────────────────────────


@deadline
@crash
def test_flood_keeps_the_newest_lines_in_order(executor: str) -> None:
    phase = Phase("flood", functools.partial(flood, 50_000), max_logs=100)
    result = run_one(executor, phase, capture_output=True)
    assert result.ok, result.state
    assert log_lines(result, "flood") == [f"line {i}" for i in range(49_900, 50_000)]
    assert {log.stream for log in status(result, "flood").logs} == {"stdout"}
    assert_still_works(executor)


@deadline
@crash
def test_undecodable_bytes_become_replacement_characters(executor: str) -> None:
    result = run_one(executor, Phase("bytes", undecodable), capture_output=True)
    assert result.ok, result.state
    (line,) = log_lines(result, "bytes")
    assert "\ufffd" in line
    assert line.startswith("ok ") and line.endswith(" bad")
    assert_still_works(executor)


@deadline
@crash
def test_over_long_line_is_split_not_dropped(executor: str) -> None:
    text = "".join(str(i % 10) for i in range(200_000))
    result = run_one(executor, Phase("long", functools.partial(over_long, text)),
                     capture_output=True)
    assert result.ok, result.state
    lines = log_lines(result, "long")
    assert len(lines) > 1
    assert "".join(lines) == text
    assert_still_works(executor)


@deadline
@crash
def test_output_of_os_system_is_captured(executor: str) -> None:
    result = run_one(executor, Phase("shell", shell_echo), capture_output=True)
    assert result.ok, result.state
    assert result.results["shell"] == 0
    assert [(log.line, log.stream) for log in status(result, "shell").logs] == [
        ("from-shell", "stdout")
    ]
    assert_still_works(executor)


@deadline
@crash
def test_stderr_is_tagged_stderr(executor: str) -> None:
    result = run_one(executor, Phase("err", to_stderr), capture_output=True)
    assert result.ok, result.state
    assert log_lines(result, "err", "stderr") == ["printed to stderr", "written to fd 2"]
    assert log_lines(result, "err", "stdout") == ["printed to stdout"]
    assert_still_works(executor)


# ── fail_fast ───────────────────────────────────────────────────────────────


def fail_when_file_exists(path: str) -> None:
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    raise RuntimeError("failing on purpose")


@deadline
@crash
def test_fail_fast_kills_running_siblings_and_their_children(executor: str,
                                                             tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    pipeline = Pipeline(
        "fail-fast",
        Phase("sleeper", functools.partial(hang_with_child, str(pid_file)), parallel=True),
        Phase("failer", functools.partial(fail_when_file_exists, str(pid_file)),
              parallel=True),
        fail_fast=True,
    )
    started = time.monotonic()
    result = pipeline.run(executor=executor, max_workers=2)
    assert time.monotonic() - started < 20
    assert status(result, "failer").status == "failed"
    assert "failing on purpose" in (status(result, "failer").error or "")
    assert status(result, "sleeper").status == "cancelled"
    assert pid_is_gone(int(pid_file.read_text()))
    assert_still_works(executor)


# ── the pool survives ───────────────────────────────────────────────────────


@deadline
@crash
def test_dead_worker_fails_only_its_own_phase(executor: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "victim.pid"
    skip = PhasePolicy(on_fail="skip")
    pipeline = Pipeline(
        "four",
        # a runs until b has written its pid: the two run at once, on two workers
        Phase("a", functools.partial(pid_once_there, str(pid_file)), parallel=True),
        Phase("b", functools.partial(write_pid_and_die, str(pid_file)), parallel=True,
              policy=skip),
        Phase("c", getpid, parallel=True),
        Phase("d", getpid, parallel=True),
    )
    result = pipeline.run(executor=executor, max_workers=2)
    assert result.ok, result.state
    assert [status(result, n).status for n in "abcd"] == ["completed", "skipped",
                                                          "completed", "completed"]
    assert "SIGKILL" in (status(result, "b").error or "")
    victim = int(pid_file.read_text())
    assert victim not in {result.results[n] for n in "acd"}
    assert_still_works(executor)


@pytest.mark.timeout(30)
def test_process_pool_replaces_a_dead_worker() -> None:
    pool = ProcessExecutor(max_workers=1)
    events: list[Any] = []
    try:
        first = pool.submit(Task("first", getpid), events.append).result(timeout=15)
        dead = pool.submit(Task("dead", sigkill_self), events.append)
        with pytest.raises(WorkerDied) as info:
            dead.result(timeout=15)
        assert "'dead'" in str(info.value)
        assert info.value.phase == "dead"
        second = pool.submit(Task("second", getpid), events.append).result(timeout=15)
        third = pool.submit(Task("third", getpid), events.append).result(timeout=15)
    finally:
        pool.shutdown()
    assert first != second
    assert second == third  # the replacement is a persistent worker too
    # nothing captured: each task only said when it started on a worker
    assert [type(e).__name__ for e in events] == ["Started"] * 4


# ── Ctrl-C ──────────────────────────────────────────────────────────────────

_PIPELINE_FILE = """\
import os
import subprocess
import time

from phasewise import Phase, Pipeline

PID_FILE = {pid_file!r}


def sleeper():
    child = subprocess.Popen(["sleep", "60"])
    with open(PID_FILE + ".tmp", "w") as f:
        f.write(f"{{os.getpid()}} {{child.pid}}")
    os.replace(PID_FILE + ".tmp", PID_FILE)
    time.sleep(60)


pipeline = Pipeline("ctrl-c", Phase("sleeper", sleeper))
"""

_DRIVER = """\
import sys

sys.path.insert(0, {directory!r})
from ctrl_c_pipeline import pipeline

from phasewise import Store

store = Store(pipeline.build_reducer())
try:
    pipeline.run(executor={executor!r}, store=store)
except KeyboardInterrupt:
    state = store.state
    print("final", state.status, *(f"{{p.name}}={{p.status}}" for p in state.phases), flush=True)
    sys.exit(130)
sys.exit(1)
"""


def _session(sid: int) -> set[int]:
    found = set()
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st[2] == sid:
            found.add(p)
    return found


def _interrupt(
    argv: list[str], tmp_path: Path, token: str, second_after: float | None = None
) -> str:
    pid_file = tmp_path / "worker.pid"
    (tmp_path / "ctrl_c_pipeline.py").write_text(_PIPELINE_FILE.format(pid_file=str(pid_file)))
    with open(tmp_path / "out.txt", "wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists():
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline, "the phase never started"
            time.sleep(0.02)
        worker, child = map(int, pid_file.read_text().split())
        # a terminal sends Ctrl-C to the foreground process group: here, the session's
        os.killpg(proc.pid, signal.SIGINT)
        if second_after is not None:
            time.sleep(second_after)
            os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("phasewise did not exit within 20 s of Ctrl-C")
        output = (tmp_path / "out.txt").read_text(errors="replace")
        assert code == 130, output
        left = wait_until_gone(lambda: _session(proc.pid) | marked(token))
        assert not left, f"left behind after Ctrl-C: {describe(left)}\n{output}"
        assert pid_is_gone(worker)
        assert pid_is_gone(child)
        return output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.timeout(45)
@crash
def test_ctrl_c_of_phasewise_run(executor: str, tmp_path: Path, no_process_left: str) -> None:
    argv = [sys.executable, "-m", "phasewise.cli.main", "run",
            str(tmp_path / "ctrl_c_pipeline.py"), "--executor", executor]
    _interrupt(argv, tmp_path, no_process_left)


@pytest.mark.timeout(45)
@crash
def test_ctrl_c_of_pipeline_run(executor: str, tmp_path: Path, no_process_left: str) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(_DRIVER).format(directory=str(tmp_path),
                                                      executor=executor))
    output = _interrupt([sys.executable, str(driver)], tmp_path, no_process_left)
    assert "final cancelled sleeper=cancelled" in output, output


@pytest.mark.timeout(45)
@crash
@pytest.mark.parametrize("second_after", [0.0, 0.05], ids=["back-to-back", "50ms-later"])
def test_second_ctrl_c_leaves_no_process(executor: str, tmp_path: Path,
                                       no_process_left: str, second_after: float) -> None:
    """Two Ctrl-Cs back to back once hung the run (the second landed inside a saga and
    the executors were shut down without cancelling); now: 130, nothing left."""
    argv = [sys.executable, "-m", "phasewise.cli.main", "run",
            str(tmp_path / "ctrl_c_pipeline.py"), "--executor", executor]
    _interrupt(argv, tmp_path, no_process_left, second_after=second_after)
