"""``phasewise mcp``: a run kept in a work directory, served to AI agents over stdio with
the Model Context Protocol (the official ``mcp`` package, extra ``phasewise[mcp]``).

::

    agent ──stdio──▶ MCPServer (mcp) ──▶ WorkdirReader ──reads──▶ pipeline-state.json
                     resource, tools      answers           journal.jsonl, logs.jsonl

``WorkdirReader`` answers the questions and knows nothing of MCP: every answer reads the work
directory afresh, without its lock, so it follows a run while it goes (and one that has
not started yet: until then each answer says what to pass). What it cannot answer it
raises as ``WorkdirError`` or ``ValueError`` with a message saying why; ``serve`` turns
those, in one place, into the tool error or resource error the agent reads.

This module imports ``mcp`` only inside ``serve``: ``import phasewise`` and ``phasewise
--help`` never do.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from phasewise.core.errors import PhasewiseError, WorkdirError
from phasewise.durable.ledger import Ledger
from phasewise.durable.workdir import Workdir

__all__ = ["MISSING_EXTRA", "TIMELINE_URI", "WorkdirReader", "mermaid_of", "serve"]

TIMELINE_URI = "phasewise://pipeline/timeline"

MISSING_EXTRA = "phasewise mcp needs the mcp package: pip install 'phasewise[mcp]'"

MCP_FLOOR = "2.3"
"""The oldest ``mcp`` this module is tested with (``MCPServer``, the 2.x name of FastMCP)."""

_T = TypeVar("_T")


class WorkdirReader:
    """The run kept in the work directory ``given`` (or, if None, the one under
    ``./.phasewise``), read afresh for every answer."""

    def __init__(self, given: str | None) -> None:
        self.given = given

    def workdir(self) -> Workdir:
        """The work directory; ``WorkdirError`` saying what to pass when there is none."""
        from phasewise.cli.status import find_workdir

        try:
            place = find_workdir(self.given)
        except ValueError as exc:
            raise WorkdirError(f"{exc} (phasewise mcp --workdir DIR)") from None
        workdir = Workdir(place)
        if not workdir.path.is_dir():
            raise WorkdirError(
                f"work directory {workdir.path} does not exist (yet): no run has started "
                f"there. Start one with `phasewise run TARGET --workdir {workdir.path}`, or "
                "restart this server as `phasewise mcp --workdir DIR` naming the work "
                "directory of a run")
        return workdir

    def ledger(self) -> Ledger:
        from phasewise.durable.resume import load_ledger

        workdir = self.workdir()
        try:
            return load_ledger(workdir)
        except WorkdirError as exc:
            raise WorkdirError(f"{exc}; start a run with `phasewise run TARGET --workdir "
                               f"{workdir.path}`") from None

    def timeline(self) -> dict[str, Any]:
        """The ``phasewise status --json`` document of the run, as it is now."""
        return self.ledger().timeline()

    def logs(self, phase: str, tail: int = 50) -> dict[str, Any]:
        """The last ``tail`` lines ``phase`` printed (as captured), oldest first."""
        from phasewise.durable.logs import read_logs

        if tail < 0:
            raise ValueError(f"tail must be 0 or more, got {tail}")
        ledger = self.ledger()
        if phase not in ledger.phases:
            names = ", ".join(repr(name) for name in ledger.phases)
            raise ValueError(f"pipeline {ledger.pipeline!r} has no phase {phase!r}; its "
                             f"phases are {names}")
        lines, _ = read_logs(self.workdir().logs_file)
        mine = [line for line in lines if line.phase == phase]
        shown = deque(mine, maxlen=tail) if tail else ()
        return {"phase": phase, "status": ledger.phases[phase]["status"],
                "total": len(mine),
                "lines": [{"time": line.time, "stream": line.stream, "line": line.line}
                          for line in shown]}

    def depends_on(self, ledger: Ledger) -> dict[str, list[str]] | None:
        """Each phase's dependencies, from the journal's last run record (None when the
        journal does not record them: one written before phasewise did)."""
        from phasewise.durable.journal import read_journal

        found: dict[str, list[str]] | None = None
        for record in read_journal(self.workdir().journal_file, ledger.journal):
            if record.get("k") == "run" and isinstance(record.get("depends_on"), dict):
                found = record["depends_on"]
        return found

    def graph(self) -> str:
        """The dependency graph as a Mermaid flowchart, each phase colored by its status."""
        ledger = self.ledger()
        statuses = {name: p["status"] for name, p in ledger.phases.items()}
        return mermaid_of(list(ledger.phases), self.depends_on(ledger), statuses)


def mermaid_of(names: Sequence[str], depends_on: Mapping[str, Sequence[str]] | None,
               statuses: Mapping[str, str]) -> str:
    """A Mermaid flowchart of the phases ``names`` (in execution order), an edge from each
    dependency to its dependant (none, and a comment saying so, if ``depends_on`` is
    None), each node filled with its status's color (``palette.STATUS_FILL``)."""
    from phasewise.cli.describe import mermaid_flowchart

    edges = [(dep, name) for name in names for dep in (depends_on or {}).get(name, ())]
    note = ("the work directory does not record the dependencies (a journal from an "
            "older phasewise): phases and statuses only") if depends_on is None else ""
    return mermaid_flowchart(names, edges, statuses, note=note)


# ── the MCP server ──────────────────────────────────────────────────────────

_INSTRUCTIONS = """\
Follows one phasewise pipeline run, kept in a work directory, live while it runs. Read \
the resource phasewise://pipeline/timeline (or call `status`) for the run's status, \
progress and each phase's status, duration, attempts, cache hit and error; call \
`logs(phase, tail)` for what a phase printed, and `graph` for the dependency graph \
(Mermaid, colored by status)."""


def _answer(ask: Callable[[], _T], error: type[Exception]) -> _T:
    """``ask()``; what WorkdirReader cannot answer re-raised as ``error`` (the mcp package's
    ToolError or ResourceError), its message kept for the agent."""
    try:
        return ask()
    except (PhasewiseError, ValueError, OSError) as exc:
        raise error(str(exc)) from None


def _server(view: WorkdirReader) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError

    import phasewise

    server = MCPServer("phasewise", version=phasewise.__version__,
                       instructions=_INSTRUCTIONS, log_level="WARNING")

    @server.resource(TIMELINE_URI, name="timeline", mime_type="application/json",
                     description="The run's timeline (the `phasewise status --json` "
                                 "document), read afresh at each request.")
    def timeline() -> str:
        return json.dumps(_answer(view.timeline, ResourceError), indent=2)

    @server.tool()
    def status() -> dict[str, Any]:
        """The run's timeline, as it is now (the `phasewise status --json` document): its
        status, elapsed seconds and progress (0 to 1, by phase weight), and per phase, in
        execution order: name, status, elapsed, attempt, error, log_count, cached."""
        return _answer(view.timeline, ToolError)

    @server.tool()
    def logs(phase: str, tail: int = 50) -> dict[str, Any]:
        """The last `tail` lines the phase printed (captured with `phasewise run
        --capture`), oldest first, each with its stream (stdout or stderr) and time
        (seconds since the epoch); `total` is how many lines the phase printed."""
        return _answer(lambda: view.logs(phase, tail), ToolError)

    @server.tool(structured_output=False)
    def graph() -> str:
        """The pipeline's dependency graph as a Mermaid flowchart: an edge from each
        dependency to its dependant, each phase filled with its status's color. With a
        work directory from an older phasewise, whose journal does not record the
        dependencies, the phases and their statuses only (a comment in the text says so)."""
        return _answer(view.graph, ToolError)

    return server


def serve(workdir: str | None) -> None:
    """Run the MCP server over stdio until the client closes it (``workdir``: as given to
    ``--workdir``; it need not exist yet). ``BadInput`` (exit 2) without ``mcp``."""
    from phasewise.cli.errors import BadInput

    try:
        from mcp.server.mcpserver import MCPServer  # noqa: F401  (the 2.x API)
    except ImportError:
        raise BadInput(MISSING_EXTRA + _installed_note()) from None
    _server(WorkdirReader(workdir)).run("stdio")


def _installed_note() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("mcp")
    except PackageNotFoundError:
        return ""
    if _release(found) >= _release(MCP_FLOOR):
        return ""  # installed, yet it cannot be imported: the import's error is elsewhere
    return f" (mcp {found} is installed; phasewise needs {MCP_FLOOR} or later)"


def _release(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        numbers.append(int(digits or 0))
    return tuple(numbers)
