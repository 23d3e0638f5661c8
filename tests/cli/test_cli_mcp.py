"""``phasewise mcp`` against a real run: the pipeline runs in a ``phasewise run`` subprocess
while the ``mcp`` package's own stdio client talks to ``phasewise mcp --workdir WD``.

The phase ``talk`` prints, then waits for a release file, so the run is held while the
server is asked about it; the test creates the file to let the run end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

import pytest

from phasewise.cli.mcp_server import MISSING_EXTRA, TIMELINE_URI

pytestmark = pytest.mark.timeout(120)

needs_mcp = pytest.mark.skipif(find_spec("mcp") is None,
                               reason="the mcp package is not installed: pip install "
                                      "'phasewise[mcp]'")

_T = TypeVar("_T")

PIPE = """\
import os
import sys
import time
from pathlib import Path

RELEASE = Path(os.environ["RELEASE_FILE"])

def talk():
    for i in range(3):
        print(f"line {i}", flush=True)
    print("a warning", file=sys.stderr, flush=True)
    while not RELEASE.exists():
        time.sleep(0.02)
    return 1

def after(context):
    print("after done")
    return context["talk"] + 1

pipeline = Pipeline("chat", Phase("talk", talk), Phase("after", after, depends_on="talk"))
"""


@dataclass
class Run:
    """A ``phasewise run`` subprocess held by its release file."""

    workdir: Path
    release: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, target: Path, phasewise_cmd: list[str]) -> None:
        with open(self.workdir.with_name("run.out"), "wb") as out:
            self.proc = subprocess.Popen(
                [*phasewise_cmd, "run", str(target), "--workdir", str(self.workdir),
                 "--capture"],
                cwd=target.parent, env={**os.environ, "RELEASE_FILE": str(self.release)},
                stdout=out, stderr=subprocess.STDOUT)

    def finish(self) -> int:
        self.release.touch()
        assert self.proc is not None
        return self.proc.wait(60)

    def output(self) -> str:
        return self.workdir.with_name("run.out").read_text(errors="replace")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    held = Run(tmp_path / "wd", tmp_path / "release")
    try:
        yield held
    finally:
        if held.proc is not None and held.proc.poll() is None:
            held.proc.kill()
            held.proc.wait(30)


@asynccontextmanager
async def _session(phasewise_cmd: list[str], workdir: Path, errlog: Path) -> AsyncIterator[Any]:
    """A ClientSession, initialized, with ``phasewise mcp --workdir workdir``."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    server = StdioServerParameters(command=phasewise_cmd[0],
                                   args=[*phasewise_cmd[1:], "mcp", "--workdir", str(workdir)],
                                   env=dict(os.environ), cwd=workdir.parent)
    with open(errlog, "w") as err:
        async with stdio_client(server, errlog=err) as (read, write), \
                ClientSession(read, write, read_timeout_seconds=30) as session:
            await session.initialize()
            yield session


async def _until(ask: Callable[[], Awaitable[_T | None]], what: str) -> _T:
    """``ask()`` again until it answers something (a deadline, not a timing assertion)."""
    import anyio

    with anyio.move_on_after(60):
        while True:
            answer = await ask()
            if answer is not None:
                return answer
            await anyio.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


async def _timeline(session: Any) -> dict[str, Any]:
    read = await session.read_resource(TIMELINE_URI)
    (content,) = read.contents
    assert content.mime_type == "application/json"
    doc: dict[str, Any] = json.loads(content.text)
    return doc


async def _tool(session: Any, name: str, **arguments: Any) -> Any:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result


def _statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["status"] for p in doc["phases"]}


@needs_mcp
def test_an_agent_follows_a_running_pipeline(
    run: Run, write_target: Callable[..., Path], phasewise_cmd: list[str], tmp_path: Path
) -> None:
    import anyio

    run.start(write_target(PIPE), phasewise_cmd)

    async def talk_to_it() -> None:
        async with _session(phasewise_cmd, run.workdir, tmp_path / "mcp.err") as session:
            resources = (await session.list_resources()).resources
            assert [(str(r.uri), r.mime_type) for r in resources] == [
                (TIMELINE_URI, "application/json")]
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert sorted(tools) == ["graph", "logs", "status"]
            assert set(tools["logs"].input_schema["properties"]) == {"phase", "tail"}
            assert tools["logs"].input_schema["required"] == ["phase"]

            async def printed() -> dict[str, Any] | None:
                result = await session.call_tool("logs", {"phase": "talk"})
                ready = not result.is_error and result.structured_content["total"] == 4
                return result.structured_content if ready else None

            logs = await _until(printed, "talk's four lines in the work directory")
            assert logs["status"] == "running"
            assert [(x["stream"], x["line"]) for x in logs["lines"]] == [
                ("stdout", "line 0"), ("stdout", "line 1"), ("stdout", "line 2"),
                ("stderr", "a warning")]
            assert all(isinstance(x["time"], float) for x in logs["lines"])
            last = (await _tool(session, "logs", phase="talk", tail=2)).structured_content
            assert [x["line"] for x in last["lines"]] == ["line 2", "a warning"]
            assert last["total"] == 4

            live = await _timeline(session)
            assert live["pipeline"] == "chat"
            assert live["status"] == "running"
            assert _statuses(live) == {"talk": "running", "after": "pending"}
            status = (await _tool(session, "status")).structured_content
            assert status["status"] == "running"
            assert _statuses(status) == _statuses(live)

            graph = (await _tool(session, "graph")).content[0].text
            assert graph.startswith("flowchart TD\n")
            assert 'p0["talk"]' in graph and 'p1["after"]' in graph
            assert "    p0 --> p1\n" in graph
            assert "class p0 running" in graph and "class p1 pending" in graph

            unknown = await session.call_tool("logs", {"phase": "nope"})
            assert unknown.is_error
            assert "has no phase 'nope'" in unknown.content[0].text
            assert "'talk', 'after'" in unknown.content[0].text
            negative = await session.call_tool("logs", {"phase": "talk", "tail": -1})
            assert negative.is_error and "tail must be 0 or more" in negative.content[0].text

            assert run.finish() == 0, run.output()
            done = await _timeline(session)
            assert done["status"] == "completed"
            assert _statuses(done) == {"talk": "completed", "after": "completed"}
            after = (await _tool(session, "logs", phase="after")).structured_content
            assert [x["line"] for x in after["lines"]] == ["after done"]
            graph = (await _tool(session, "graph")).content[0].text
            assert "class p0,p1 completed" in graph

    anyio.run(talk_to_it)
    assert "Traceback" not in (tmp_path / "mcp.err").read_text()


@needs_mcp
def test_a_work_directory_that_does_not_exist_yet_is_named_then_followed(
    run: Run, write_target: Callable[..., Path], phasewise_cmd: list[str], tmp_path: Path
) -> None:
    import anyio
    from mcp.shared.exceptions import MCPError

    target = write_target(PIPE)
    run.release.touch()  # this run need not wait

    async def talk_to_it() -> None:
        async with _session(phasewise_cmd, run.workdir, tmp_path / "mcp.err") as session:
            for tool, arguments in [("status", {}), ("logs", {"phase": "talk"}), ("graph", {})]:
                result = await session.call_tool(tool, arguments)
                assert result.is_error, tool
                text = result.content[0].text
                assert f"work directory {run.workdir} does not exist" in text
                assert "--workdir" in text
            with pytest.raises(MCPError, match="does not exist"):
                await session.read_resource(TIMELINE_URI)

            run.start(target, phasewise_cmd)  # the server, still up, finds the run

            async def completed() -> dict[str, Any] | None:
                result = await session.call_tool("status", {})
                done = not result.is_error and result.structured_content["status"] == "completed"
                return result.structured_content if done else None

            doc = await _until(completed, "the run to complete")
            assert _statuses(doc) == {"talk": "completed", "after": "completed"}

    anyio.run(talk_to_it)
    assert run.proc is not None and run.proc.wait(60) == 0, run.output()
    assert "Traceback" not in (tmp_path / "mcp.err").read_text()


def test_without_the_mcp_package_it_says_which_extra_to_install(tmp_path: Path) -> None:
    """``mcp`` made unimportable (None in sys.modules), as if the extra were not installed."""
    shim = ("import sys; sys.modules['mcp'] = None; "
            "from phasewise.cli.main import main; "
            f"sys.argv = ['phasewise', 'mcp', '--workdir', {str(tmp_path)!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", shim], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert MISSING_EXTRA in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_import_phasewise_and_help_never_import_mcp() -> None:
    code = """if True:
        import sys
        import phasewise
        from phasewise.cli.main import cli
        for args in (["--help"], ["mcp", "--help"]):
            try:
                cli.main(args, prog_name="phasewise")
            except SystemExit as exit_:
                assert exit_.code == 0, exit_.code
        loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
        print("loaded:", loaded)
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Serve a run's timeline to AI agents" in proc.stdout
    assert proc.stdout.rstrip().endswith("loaded: []"), proc.stdout


def test_a_journal_without_dependencies_gives_the_phases_and_statuses_only(
    run: Run, write_target: Callable[..., Path], phasewise_cmd: list[str]
) -> None:
    """A journal written before phasewise recorded depends_on (simulated: taken out)."""
    from phasewise.cli.mcp_server import WorkdirReader

    run.release.touch()
    run.start(write_target(PIPE), phasewise_cmd)
    assert run.finish() == 0, run.output()
    journal = run.workdir / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    for record in records:
        record.pop("depends_on", None)
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    graph = WorkdirReader(str(run.workdir)).graph()
    assert "does not record the dependencies" in graph
    assert "-->" not in graph
    assert 'p0["talk"]' in graph and "class p0,p1 completed" in graph
