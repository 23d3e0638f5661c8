"""A reader that goes away (``phasewise run x.py 2>&1 | head -3``) does not change the
exit code: real pipes, closed early, and a phase that runs after the close."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from phasewise.cli.pipes import PipeGuard, guard_std_streams, is_broken_pipe

PIPES = """\
import os
import time
from pathlib import Path

from phasewise import Phase, Pipeline

MARKS = Path(os.environ["PIPES_MARKS"])


def chatty():
    for i in range(5):
        print(f"before the close {i}")


def after_close(context):
    deadline = time.monotonic() + 30
    while not (MARKS / "closed").exists():  # the test closed its end of the pipe
        if time.monotonic() > deadline:
            raise RuntimeError("the reader never went away")
        time.sleep(0.01)
    for i in range(3000):  # far more than a pipe holds: some write must hit EPIPE
        print(f"after the close {i}")
    return "printed"


def last(context):
    (MARKS / "last").write_text("ran to the end", encoding="utf-8")
    return "ok"


pipeline = Pipeline(
    "pipes",
    Phase("chatty", chatty),
    Phase("after_close", after_close, depends_on=("chatty",)),
    Phase("last", last, depends_on=("after_close",)),
    capture_output=True,
)
"""


def _env(buffering: str = "buffered", **extra: str) -> dict[str, str]:
    """The environment for the child: Python's usual buffered stdout (a pipe is written
    in 8 KiB blocks), or ``PYTHONUNBUFFERED`` (every write is a system call)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if buffering == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


BUFFERING = pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])


def _start(
    cmd: list[str], tmp_path: Path, *args: str, stderr: int | io.IOBase,
    buffering: str = "buffered",
) -> tuple[subprocess.Popen[bytes], Path]:
    target = tmp_path / "pipes.py"
    target.write_text(PIPES, encoding="utf-8")
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [*cmd, "run", str(target), *args], stdout=subprocess.PIPE, stderr=stderr,
        env=_env(buffering, PIPES_MARKS=str(marks)),
    )
    return proc, marks


def _finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(60)
@BUFFERING
@pytest.mark.parametrize("capture", ["--capture", "--no-capture"])
def test_stdout_and_stderr_closed_early_keep_exit_code_0(
    capture: str, buffering: str, phasewise_cmd: list[str], tmp_path: Path
) -> None:
    """``2>&1 | head``: progress, captured lines (or the phase's own prints, uncaptured)
    and the summary all go to a pipe nobody reads any more."""
    proc, marks = _start(phasewise_cmd, tmp_path, capture, stderr=subprocess.STDOUT,
                         buffering=buffering)
    assert proc.stdout is not None
    head = os.read(proc.stdout.fileno(), 20)
    assert head.startswith(b"phasewise: running")
    proc.stdout.close()
    (marks / "closed").touch()
    assert _finish(proc) == 0
    assert (marks / "last").read_text(encoding="utf-8") == "ran to the end"


@pytest.mark.timeout(60)
@BUFFERING
def test_json_on_a_closed_stdout_keeps_exit_code_0(
    buffering: str, phasewise_cmd: list[str], tmp_path: Path
) -> None:
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as err:
        proc, marks = _start(phasewise_cmd, tmp_path, "--json", stderr=err,
                             buffering=buffering)
        assert proc.stdout is not None
        proc.stdout.close()  # before the document: writing it hits EPIPE
        (marks / "closed").touch()
        code = _finish(proc)
    text = errors.read_text(encoding="utf-8")
    assert code == 0, text
    assert (marks / "last").read_text(encoding="utf-8") == "ran to the end"
    assert "pipeline 'pipes' completed" in text
    assert "after_close | after the close 2999" in text
    for needle in ("Traceback", "BrokenPipe", "Exception ignored"):
        assert needle not in text


@pytest.mark.timeout(60)
def test_json_cut_short_by_the_reader_keeps_exit_code_0(
    phasewise_cmd: list[str], tmp_path: Path
) -> None:
    """``--json | head -c 100``: the reader takes the start of the document and goes."""
    target = tmp_path / "big.py"
    target.write_text(
        "from phasewise import Phase, Pipeline\n\n"
        "def big():\n    return 'x' * 500_000\n\n"
        "pipeline = Pipeline('big', Phase('big', big))\n", encoding="utf-8")
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as err:
        # buffered: the document's write fails half-way (unbuffered, Python's text layer
        # drops what a partial write left over, and nothing fails)
        proc = subprocess.Popen([*phasewise_cmd, "run", str(target), "--json"],
                                stdout=subprocess.PIPE, stderr=err, env=_env())
        assert proc.stdout is not None
        start = os.read(proc.stdout.fileno(), 100)
        proc.stdout.close()
        code = _finish(proc)
    text = errors.read_text(encoding="utf-8")
    assert code == 0, text
    assert start.startswith(b"{")
    for needle in ("Traceback", "BrokenPipe", "Exception ignored"):
        assert needle not in text


@pytest.mark.timeout(60)
def test_a_failed_run_still_exits_1(phasewise_cmd: list[str], tmp_path: Path) -> None:
    target = tmp_path / "fails.py"
    target.write_text(
        "from phasewise import Phase, Pipeline\n\n"
        "def noisy():\n    for i in range(20000):\n        print('line', i)\n"
        "    raise RuntimeError('kaboom')\n\n"
        "pipeline = Pipeline('fails', Phase('noisy', noisy), capture_output=True)\n",
        encoding="utf-8")
    proc = subprocess.Popen([*phasewise_cmd, "run", str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env())
    assert proc.stdout is not None
    os.read(proc.stdout.fileno(), 20)
    proc.stdout.close()
    assert _finish(proc) == 1


# ── the guard itself, on a real pipe ────────────────────────────────────────


def test_guard_points_a_broken_pipe_at_dev_null() -> None:
    read_fd, write_fd = os.pipe()
    stream = io.TextIOWrapper(io.FileIO(write_fd, "w"), encoding="utf-8", line_buffering=True)
    guard = PipeGuard(stream)  # type: ignore[arg-type]
    try:
        guard.write("read by the reader\n")
        assert os.read(read_fd, 100) == b"read by the reader\n"
        os.close(read_fd)
        assert guard.write("nobody reads this\n") == len("nobody reads this\n")
        assert guard.broken
        assert stat.S_ISCHR(os.fstat(write_fd).st_mode)  # now /dev/null
        guard.write("dropped\n")
        guard.flush()
        os.write(write_fd, b"raw writes do not fail either\n")
    finally:
        stream.close()


def test_guard_lets_other_errors_through() -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    guard = PipeGuard(Full())
    with pytest.raises(OSError, match="No space"):
        guard.write("x")
    assert not guard.broken
    assert is_broken_pipe(BrokenPipeError())
    assert is_broken_pipe(OSError(32, "Broken pipe"))
    assert not is_broken_pipe(OSError(28, "No space left on device"))


def test_guard_std_streams_restores_what_it_replaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    before = sys.stdout, sys.stderr
    with guard_std_streams():
        assert isinstance(sys.stdout, PipeGuard) and sys.stdout.original is before[0]
        assert isinstance(sys.stderr, PipeGuard)
        print("through the guard")
        print(json.dumps({"k": 1}), file=sys.stderr)
        with guard_std_streams():  # nested: not wrapped twice
            assert sys.stdout.original is before[0]  # type: ignore[attr-defined]
    assert (sys.stdout, sys.stderr) == before
    captured = capsys.readouterr()
    assert captured.out == "through the guard\n"
    assert captured.err == '{"k": 1}\n'
