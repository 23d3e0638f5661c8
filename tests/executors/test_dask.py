"""DaskExecutor on a real cluster: a scheduler and two workers started as separate
processes on 127.0.0.1 (once per session), the conformance suite run on them, and what a
cluster adds: live lines through worker events, a worker SIGKILLed mid-phase, a timeout
that stops the code on the worker, an unreachable scheduler, the LocalCluster default.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed: "
                    "pip install 'phasewise[dask]' to test the dask executor")

from processes import descendants, wait_until_gone

from phasewise import Phase, Pipeline, Store
from phasewise.core.errors import ExecutorError
from phasewise.core.task import Task
from phasewise.executors import DaskExecutor
from phasewise.testing import ExecutorUnderTest
from phasewise.testing.conformance import *  # noqa: F403

pytestmark = pytest.mark.timeout(60)

START_LIMIT = 60.0


# ── the cluster ─────────────────────────────────────────────────────────────


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for process in processes:
        process.wait(10)


def _start_worker(scheduler_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    return _spawn("distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                  "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard", *extra)


def _wait_for_workers(address: str, n: int, resource: str | None = None) -> None:
    from distributed import Client

    with Client(address, timeout=START_LIMIT, set_as_default=False) as client:
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            if resource is None and len(workers) >= n:
                return
            if resource is not None and any(resource in w.get("resources", {})
                                            for w in workers):
                return
            time.sleep(0.1)
    raise TimeoutError(f"the dask workers did not join {address}")


@pytest.fixture(scope="module")  # gone before other modules count their processes
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A scheduler and two one-thread workers, separate processes on 127.0.0.1:
    ``(address, scheduler_file)``."""
    scheduler_file = tmp_path_factory.mktemp("dask") / "scheduler.json"
    processes = [_spawn("distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                        "--port", "0", "--no-dashboard", "--scheduler-file",
                        str(scheduler_file))]
    try:
        deadline = time.monotonic() + START_LIMIT
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        import json

        time.sleep(0.1)  # the file is written whole, but give it a moment
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        processes += [_start_worker(scheduler_file), _start_worker(scheduler_file)]
        _wait_for_workers(address, 2)
        yield address, scheduler_file
    finally:
        _stop(processes)


@pytest.fixture(autouse=True)
def _skip_what_a_cluster_cannot_do(request: pytest.FixtureRequest) -> None:
    if request.node.originalname == "test_without_capture_output_passes_through":
        pytest.skip("on a cluster, a phase that does not capture writes to its dask "
                    "worker's own stdout/stderr, not the parent's (docs/cluster.md)")


@pytest.fixture
def address(dask_cluster: tuple[str, Path]) -> str:
    return dask_cluster[0]


@pytest.fixture
def phasewise_executor(address: str) -> ExecutorUnderTest:
    """The conformance suite, imported above, runs on the session's cluster."""
    return ExecutorUnderTest("dask", options={"address": address})


@pytest.fixture
def no_phase_process_left() -> Iterator[None]:
    """No process a phase started (a worker's child) is left after the test."""
    me = os.getpid()
    before = descendants(me)
    yield
    left = wait_until_gone(lambda: descendants(me) - before)
    assert not left, f"processes left behind: {sorted(left)}"


# ── handlers (imported by reference in the workers' children) ───────────────


def print_then_sleep(seconds: float) -> float:
    print("early line", flush=True)
    time.sleep(seconds)
    return time.time()


def sleep_then_touch(seconds: float, path: str) -> None:
    time.sleep(seconds)
    Path(path).touch()


def announce_then_sleep(path: str, seconds: float) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


# ── what a cluster adds ─────────────────────────────────────────────────────


def test_a_printed_line_reaches_the_store_before_the_phase_ends(
    address: str, no_phase_process_left: None
) -> None:
    pipeline = Pipeline("live", Phase("live", partial(print_then_sleep, 1.5)),
                        capture_output=True)
    store = Store(pipeline.build_reducer())
    seen: list[float] = []

    def listener() -> None:
        if not seen and any(line.line == "early line"
                            for line in store.state.phase("live").logs):
            seen.append(time.time())

    store.subscribe(listener)
    result = pipeline.run(executor="dask", executor_options={"address": address}, store=store)
    assert result.ok, result.state.phase("live").error
    ended = result.results["live"]
    assert seen, "the line never reached the Store"
    assert seen[0] < ended - 1.0, f"the line arrived {ended - seen[0]:.2f}s before the end"


def test_the_scheduler_forgets_the_events_of_an_executor_that_shut_down(
    address: str, no_phase_process_left: None
) -> None:
    from distributed import Client

    executor = DaskExecutor(address=address)
    logged: list[object] = []
    with executor:
        assert executor.submit(Task("talks", partial(print_then_sleep, 0.0),
                                    capture_output=True), logged.append).result(30)
    assert any(list(getattr(e, "lines", ())) == ["early line"] for e in logged), logged
    with Client(address, set_as_default=False) as client:
        assert client.get_events(executor.topic) == ()


def test_a_worker_killed_mid_phase_fails_that_phase_naming_the_worker(
    dask_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, scheduler_file = dask_cluster
    victim = _start_worker(scheduler_file, "--resources", "VICTIM=1", "--no-nanny")
    try:
        _wait_for_workers(address, 0, resource="VICTIM")
        started = tmp_path / "started"
        with DaskExecutor(address=address, resources={"victim": {"VICTIM": 1}}) as executor:
            from distributed import Client

            with Client(address, set_as_default=False) as client:
                worker = next(a for a, w in client.scheduler_info(n_workers=-1)["workers"]
                              .items() if "VICTIM" in w.get("resources", {}))
            future = executor.submit(
                Task("victim", partial(announce_then_sleep, str(started), 30.0)), print)
            deadline = time.monotonic() + 20
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.exists(), "the phase never started"
            child = int(started.read_text())
            victim.kill()
            with pytest.raises(Exception) as raised:
                future.result(timeout=20)
        message = str(raised.value)
        assert "victim" in message and worker in message, message
        assert wait_until_gone(lambda: {child} if _alive(child) else set(), 5.0) == set()
    finally:
        _stop([victim])


def note_then_sleep_then_note(path: str, seconds: float) -> None:
    with open(path, "a") as notes:
        notes.write(f"start {os.getpid()} {os.getppid()}\n")
    time.sleep(seconds)
    with open(path, "a") as notes:
        notes.write("end\n")


def test_a_phase_whose_worker_died_is_not_run_again_by_a_scheduler_that_retries(
    dask_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    """The test scheduler allows dask's default 3 failures: when the worker running a
    phase dies, dask gives the task to the other worker that can take it; phasewise has
    failed the phase, and kills it there too (it must not run to its end)."""
    address, scheduler_file = dask_cluster
    spares = [_start_worker(scheduler_file, "--resources", "SPARE=1", "--no-nanny")
              for _ in range(2)]
    notes = tmp_path / "notes"
    try:
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            deadline = time.monotonic() + START_LIMIT
            while sum("SPARE" in w.get("resources", {}) for w in client.scheduler_info(
                    n_workers=-1)["workers"].values()) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        with DaskExecutor(address=address) as executor:
            future = executor.submit(Task("spare", partial(
                note_then_sleep_then_note, str(notes), 4.0), resources={"SPARE": 1}), print)
            deadline = time.monotonic() + 20
            while not notes.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert notes.exists(), "the phase never started"
            worker_pid = int(notes.read_text().split()[2])
            victim = next(p for p in spares if p.pid == worker_pid)
            victim.kill()
            with pytest.raises(Exception, match="died"):
                future.result(timeout=20)
            time.sleep(6.0)  # past the end of a run given to the other worker
        assert "end" not in notes.read_text(), notes.read_text()
    finally:
        _stop(spares)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(
        f"/proc/{pid}/stat").read_text()


def test_a_timeout_stops_the_code_on_the_worker(
    address: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    late = tmp_path / "written_after_the_timeout"
    pipeline = Pipeline("timeout", Phase("slow", partial(sleep_then_touch, 1.5, str(late)),
                                         timeout=0.3))
    result = pipeline.run(executor="dask", executor_options={"address": address})
    assert result.state.phase("slow").status == "failed"
    assert "timed out" in result.state.phase("slow").error
    time.sleep(2.0)
    assert not late.exists(), "the phase kept running on the worker after its timeout"


def test_an_unreachable_scheduler_is_an_executor_error() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ExecutorError, match="cannot reach the dask scheduler"):
        DaskExecutor(address=f"tcp://127.0.0.1:{port}", connect_timeout=1.0)


def test_dask_scheduler_address_is_used_without_an_address(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    with DaskExecutor() as executor:
        assert executor.cluster is None
        assert executor.address == address


def test_no_dashboard_is_announced_for_a_scheduler_without_one(
    address: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with DaskExecutor(address=address):
        pass
    assert "dashboard" not in capfd.readouterr().err


def test_without_an_address_a_local_cluster_runs_and_is_closed(
    monkeypatch: pytest.MonkeyPatch, no_phase_process_left: None
) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    from phasewise.testing import handlers as h

    pipeline = Pipeline("local", Phase("a", partial(h.const, 1)),
                        Phase("b", partial(h.where)), parallel=True)
    result = pipeline.run(executor="dask", max_workers=2)
    assert result.ok
    assert result.results["a"] == 1
    assert result.results["b"][0] != os.getpid()


def test_shutdown_with_cancel_stops_running_phases(
    address: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    started = tmp_path / "started"
    executor = DaskExecutor(address=address)
    future = executor.submit(
        Task("long", partial(announce_then_sleep, str(started), 30.0)), print)
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    t = time.monotonic()
    executor.shutdown(cancel=True)
    assert time.monotonic() - t < 10
    assert future.done()


# ── resources, the real start, results kept on the cluster ─────────────────


@pytest.fixture(scope="module")
def gpu_worker(dask_cluster: tuple[str, Path]) -> Iterator[str]:
    """A third worker, the only one started with ``--resources GPU=1``: its address."""
    address, scheduler_file = dask_cluster
    worker = _start_worker(scheduler_file, "--resources", "GPU=1")
    try:
        _wait_for_workers(address, 0, resource="GPU")
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            yield next(a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
                       if "GPU" in w.get("resources", {}))
    finally:
        _stop([worker])


def test_a_phase_asking_for_a_gpu_runs_on_the_worker_that_has_one(
    address: str, gpu_worker: str, no_phase_process_left: None
) -> None:
    from phasewise.testing import handlers as h

    pipeline = Pipeline("gpu", *[Phase(f"train{i}", partial(h.const, i), resources={"GPU": 1})
                                 for i in range(3)],
                        Phase("plain", partial(h.const, "x")), parallel=True)
    result = pipeline.run(executor="dask", executor_options={"address": address})
    assert result.ok, [p.error for p in result.state.phases]
    assert result.results == {"train0": 0, "train1": 1, "train2": 2, "plain": "x"}
    for i in range(3):  # Started names the worker, which the state keeps
        assert result.state.phase(f"train{i}").worker == gpu_worker
    assert result.state.phase("plain").worker.startswith("tcp://127.0.0.1:")


def test_other_executors_ignore_resources() -> None:
    from phasewise.testing import handlers as h

    pipeline = Pipeline("gpu", Phase("train", partial(h.const, 1), resources={"GPU": 1}))
    for executor in ("inline", "thread", "process"):
        result = pipeline.run(executor=executor, max_workers=1)
        assert result.ok and result.results == {"train": 1}, executor


@contextlib.contextmanager
def _gpu_held(address: str, busy: Path, seconds: float) -> Iterator[Any]:
    """Another client's task holds the GPU for ``seconds``; yields its future, once it
    runs, and leaves when it is done."""
    from distributed import Client

    with Client(address, set_as_default=False) as other:
        hold = other.submit(  # a lambda: pickled by value, as this module is not there
            lambda path, s: (Path(path).touch(), time.sleep(s)), str(busy), seconds,
            resources={"GPU": 1}, pure=False)
        deadline = time.monotonic() + 20
        while not busy.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert busy.exists(), "the task holding the GPU never started"
        yield hold
        hold.result(timeout=seconds + 20)


def test_a_queued_phase_is_timed_from_its_start_on_a_worker(
    address: str, gpu_worker: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    """The GPU is busy with another client's task for 4 s; a phase asking for it waits
    in dask's queue, pending, and its 2 s timeout counts only once it runs (0.1 s)."""
    with _gpu_held(address, tmp_path / "busy", 4.0) as hold:
        pipeline = Pipeline("queued", Phase("queued", partial(print_then_sleep, 0.1),
                                            timeout=2.0, resources={"GPU": 1}))
        store = Store(pipeline.build_reducer())
        statuses: list[str] = []
        store.subscribe(lambda: statuses.append(store.state.phase("queued").status))
        result = pipeline.run(executor="dask", executor_options={"address": address},
                              store=store)
        assert hold.done(), "the phase ran while the GPU was busy"
    assert result.ok, result.state.phase("queued").error
    assert statuses[0] == "pending" and "running" in statuses
    assert result.state.phase("queued").worker == gpu_worker


def test_a_phase_still_queued_when_another_fails_never_runs(
    address: str, gpu_worker: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    from phasewise.testing import handlers as h

    ran = tmp_path / "ran"
    with _gpu_held(address, tmp_path / "busy", 3.0):
        pipeline = Pipeline(
            "withdrawn", Phase("fails", partial(h.fail, "no"), parallel=True),
            Phase("queued", partial(sleep_then_touch, 0.0, str(ran)), parallel=True,
                  resources={"GPU": 1}))
        result = pipeline.run(executor="dask", executor_options={"address": address})
    time.sleep(1.0)  # the GPU is free: a task not withdrawn would run now
    assert result.state.phase("fails").status == "failed"
    queued = result.state.phase("queued")
    assert queued.status == "cancelled" and "not started" in queued.error, queued
    assert not ran.exists(), "the withdrawn phase ran on the worker"


def make_bytes(size: int) -> bytes:
    return b"\x5a" * size


def measure(context: dict[str, bytes]) -> tuple[int, int]:
    data = context["make"]
    return len(data), data.count(b"\x5a")


def _bytes_read() -> int:
    """What this process has received so far over its open TCP connections (the
    kernel's count, ``tcpi_bytes_received`` of ``TCP_INFO``, for each socket)."""
    import socket
    import struct

    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(int(fd))) as sock:
                if sock.type != socket.SOCK_STREAM or sock.family not in (
                        socket.AF_INET, socket.AF_INET6):
                    continue
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        except OSError:
            continue
        total += struct.unpack_from("Q", info, 128)[0]  # tcpi_bytes_received
    return total


SIZE = 30_000_000


def test_a_large_result_goes_to_a_dask_dependant_without_crossing_the_parent(
    address: str, no_phase_process_left: None
) -> None:
    with DaskExecutor(address=address) as executor:
        before = _bytes_read()
        kept = executor.submit(Task("make", partial(make_bytes, SIZE)), print).result(30)
        used = executor.submit(Task("use", measure, {"make": kept}), print).result(30)
        read = _bytes_read() - before
        assert used == (SIZE, SIZE)
        assert read < SIZE // 10, f"the parent read {read} bytes"
        assert kept.fetch() == make_bytes(SIZE)  # brought here only when asked for
        assert _bytes_read() - before >= SIZE


def test_a_kept_result_reaches_the_run_and_its_non_dask_dependants(
    address: str, no_phase_process_left: None
) -> None:
    pipeline = Pipeline(
        "kept", Phase("make", partial(make_bytes, 2_000_000)),
        Phase("use", measure, depends_on="make"),
        Phase("here", measure, depends_on="make", executor="inline"),
        Phase("medium", partial(make_bytes, 200_000)))  # not on the end event, not kept
    result = pipeline.run(executor="dask", executor_options={"address": address})
    assert result.ok, [p.error for p in result.state.phases]
    assert result.results == {"make": make_bytes(2_000_000), "use": (2_000_000, 2_000_000),
                              "here": (2_000_000, 2_000_000), "medium": make_bytes(200_000)}


def test_a_work_directory_saves_a_kept_result_and_a_resumed_run_loads_it(
    address: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    pipeline = Pipeline(
        "saved", Phase("make", partial(make_bytes, 2_000_000)),
        Phase("use", measure, depends_on="make"))
    options = {"address": address}
    first = pipeline.run(executor="dask", executor_options=options, workdir=tmp_path / "w")
    assert first.ok, [p.error for p in first.state.phases]
    again = pipeline.run(executor="dask", executor_options=options, workdir=tmp_path / "w",
                         resume=True)
    assert again.ok and again.results["make"] == make_bytes(2_000_000)
    assert again.results["use"] == (2_000_000, 2_000_000)


def slow_bytes(size: int) -> bytes:
    time.sleep(1.0)  # while the other phase prints
    return make_bytes(size)


def chatty() -> int:
    for i in range(300):
        print("line", i, flush=True)
        time.sleep(0.01)
    return 1


@pytest.mark.timeout(120)
def test_a_kept_result_is_recorded_while_another_phase_prints(
    address: str, tmp_path: Path, no_phase_process_left: None
) -> None:
    """The work directory records a kept result as its phase completes; fetching it then,
    inside the Store's lock, waited on the thread that delivers the printing phase's
    lines to that Store: the run hung."""
    pipeline = Pipeline(
        "recorded", Phase("make", partial(slow_bytes, 5_000_000), parallel=True),
        Phase("chatty", chatty, parallel=True),
        Phase("use", measure, depends_on="make", parallel=True), capture_output=True)
    result = pipeline.run(executor="dask", max_workers=2, executor_options={
        "address": address}, workdir=tmp_path / "w")
    assert result.ok, [p.error for p in result.state.phases]
    assert result.results["use"] == (5_000_000, 5_000_000)
    assert len(result.state.phase("chatty").logs) > 0


@pytest.mark.parametrize("bad", [-1, "big", 1.5, True])
def test_a_bad_keep_on_cluster_is_a_clear_error(bad: object) -> None:
    from phasewise.core.errors import ExecutorOptionsError

    pipeline = Pipeline("bad", Phase("a", print))
    with pytest.raises(ExecutorOptionsError, match="keep_on_cluster must be a whole number"):
        pipeline.run(executor="dask", executor_options={"keep_on_cluster": bad})


# ── the command line ────────────────────────────────────────────────────────

SCRIPT = """
import time
from phasewise import Phase, Pipeline

def slow():
    print("working", flush=True)
    time.sleep(60)

pipeline = Pipeline("cc", Phase("slow", slow))
"""


def test_ctrl_c_of_a_run_on_a_local_cluster_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_process_left: str
) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    script = tmp_path / "cc.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        run = subprocess.Popen(
            [sys.executable, "-m", "phasewise.cli.main", "run", str(script), "--executor",
             "dask", "-j", "2", "--workdir", str(tmp_path / "work")],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while b"working" not in out.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b"working" in out.read_bytes(), out.read_text()
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert run.wait(30) == 130, out.read_text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert "CANCELLED" in out.read_text()


def _without_distributed(*args: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys; sys.modules['distributed'] = None; "
            f"sys.argv = ['phasewise', *{list(args)!r}]; "
            "from phasewise.cli.main import main; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_without_distributed_dask_is_unavailable_with_the_install_command(
    tmp_path: Path,
) -> None:
    listed = _without_distributed("executors")
    line = next(x for x in listed.stdout.splitlines() if x.startswith("dask"))
    assert "unavailable" in line and "phasewise[dask]" in line, listed.stdout
    script = tmp_path / "p.py"
    script.write_text(SCRIPT)
    ran = _without_distributed("run", str(script), "--executor", "dask")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "phasewise[dask]" in ran.stdout + ran.stderr
