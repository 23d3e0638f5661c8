"""A run kept in a work directory, read for the report: ``load_view(workdir) -> RunView``.

::

    journal.jsonl ─▶ collect_attempts ─▶ attempts, depends_on ──┐
    pipeline-state.json ─▶ load_ledger ─▶ phases, run status ───┼─▶ RunView
    logs.jsonl ─▶ tail_logs ─▶ last lines, escapes taken out ───┘

An attempt runs from its start to its end, wall clock; one that was retried ends
``retrying``. Each is on its worker's lane (an executor and worker: ``process · pid
1234``; ``thread`` in-process), a cache hit on the ``cache`` lane, a phase that never
started on the ``not started`` lane. The critical path is the longest chain by duration
through the dependency graph ending at the last phase to finish (journals written before
the run record named ``depends_on`` have none). A run still ``running`` whose process is
gone is reported interrupted. Nothing here is HTML: html_report.py draws a ``RunView``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phasewise.plugins.reporters import printable, where_text

__all__ = [
    "CACHE_LANE",
    "LINE_CHARS",
    "NOT_STARTED_LANE",
    "TAIL_LINES",
    "Attempt",
    "RunView",
    "collect_attempts",
    "critical_path",
    "load_view",
]

TAIL_LINES = 20
"""Last lines of a phase kept in the report: in its last bar's hover text, and in the
panel a click opens (read from there)."""
LINE_CHARS = 300
"""A longer captured line is cut to this many characters."""
NOT_STARTED_LANE, CACHE_LANE = "not started", "cache"
"""The lanes of the phases that never started and of cache hits (the others are the
workers')."""

@dataclass(frozen=True, slots=True)
class Attempt:
    """One bar: a phase's attempt from ``start`` to ``end`` (wall clock; equal for a phase
    that never started), how it ended (``retrying`` when another attempt followed)."""

    phase: str
    attempt: int
    status: str
    start: float
    end: float
    executor: str = ""
    worker: str = ""
    cached: bool = False
    error: str = ""

    @property
    def lane(self) -> str:
        if self.cached:
            return CACHE_LANE
        if not self.executor:
            return NOT_STARTED_LANE
        return where_text(self.executor, self.worker)


@dataclass(slots=True)
class RunView:
    """What the report shows: the ledger's phases (in execution order), every attempt,
    the dependency graph if recorded, and each phase's last captured lines."""

    pipeline: str
    status: str
    started: float
    finished: float
    phases: list[dict[str, Any]]
    attempts: dict[str, list[Attempt]]
    depends_on: dict[str, list[str]] | None
    tails: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def critical(self) -> list[str]:
        return critical_path(self.attempts, self.depends_on) if self.depends_on else []


def collect_attempts(records: Iterable[Mapping[str, Any]], now: float, *, alive: bool = True
                     ) -> tuple[dict[str, list[Attempt]], dict[str, list[str]] | None]:
    """Each phase's attempts from journal ``records`` (in order), and the dependency
    graph of the last run record that has one. An attempt still open when a later run
    starts, or the run ends, was cut off (``cancelled``); one open at the journal's end
    is ``running`` until ``now`` — or, if the run's process is no longer ``alive``, cut
    off at the last record."""
    attempts: dict[str, list[Attempt]] = {}
    opened: dict[str, Mapping[str, Any]] = {}
    depends_on: dict[str, list[str]] | None = None

    def close(name: str, status: str, end: float, record: Mapping[str, Any]) -> None:
        start = opened.pop(name, None)
        if start is None:  # ended without starting: a cache hit, or never ran
            start = {"started": end, "attempt": record.get("attempt", 1) or 1}
        attempts.setdefault(name, []).append(Attempt(
            name, int(start.get("attempt", 1) or 1), status, float(start["started"]),
            max(end, float(start["started"])), str(start.get("executor", "")),
            str(start.get("worker", "")), bool(record.get("cached")),
            str(record.get("error", "") or "")))

    def cut_off(at: float, why: str) -> None:
        for name in list(opened):
            close(name, "cancelled", at, {"error": why})

    at = now
    for record in records:
        kind, at = record.get("k"), float(record.get("time", at))
        if kind == "run":
            cut_off(at, "interrupted: the run ended without finishing it")
            if isinstance(record.get("depends_on"), dict):
                depends_on = {str(k): [str(d) for d in v]
                              for k, v in record["depends_on"].items()}
        elif kind == "end":
            cut_off(at, "cut off when the run ended")
        elif kind == "phase":
            name, status = str(record.get("phase", "")), str(record.get("status", ""))
            if status == "running":
                if name in opened:
                    close(name, "retrying", at, {})
                opened[name] = {**record, "started": record.get("started", at)}
            elif "finished" not in record and status != "retrying":
                continue  # a phase a resumed run carried over: its bars are earlier on
            else:
                close(name, status, float(record.get("finished", at)), record)
    if not alive:
        cut_off(at, "interrupted: the run's process is gone")
    for name, start in list(opened.items()):
        close(name, "running", max(now, float(start["started"])), {})
    return attempts, depends_on


def critical_path(attempts: Mapping[str, Sequence[Attempt]],
                  depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """The longest chain by duration (a phase's attempts added up) through
    ``depends_on`` (in execution order: dependencies first) that ends at the phase that
    finished last (of those that ran, or were cache hits); [] when none did."""
    ends = {name: max(a.end for a in ran) for name, runs in attempts.items()
            if (ran := [a for a in runs if a.lane != NOT_STARTED_LANE])}
    if not ends:
        return []
    last = max(ends, key=lambda name: ends[name])
    longest: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for name in depends_on:
        duration = sum(a.end - a.start for a in attempts.get(name, ()))
        deps = [d for d in depends_on[name] if d in longest]
        best = max(deps, key=lambda d: longest[d], default=None)
        longest[name] = duration + (longest[best] if best is not None else 0.0)
        before[name] = best
    path: list[str] = []
    at: str | None = last if last in before else None
    while at is not None:
        path.append(at)
        at = before[at]
    return path[::-1]


def load_view(workdir: Path) -> RunView:
    """The run kept in ``workdir``; ``ValueError``/``PhasewiseError``/``OSError`` if it
    holds none or cannot be read."""
    from phasewise.durable.journal import read_journal
    from phasewise.durable.logs import tail_logs
    from phasewise.durable.resume import load_ledger
    from phasewise.durable.workdir import Workdir

    place = Workdir(workdir)
    if not place.path.is_dir():
        why = "it is not a directory" if place.path.exists() else "it does not exist"
        raise ValueError(f"no run is recorded in {workdir}: {why}; pass the --workdir of "
                         "a run")
    from phasewise.cli.status import is_alive

    ledger = load_ledger(place)
    alive = ledger.status != "running" or is_alive(ledger.pid)
    status = ledger.status if alive else f"interrupted (its process {ledger.pid} is gone)"
    attempts, depends_on = collect_attempts(read_journal(place.journal_file, ledger.journal),
                                            ledger.finished or time.time(), alive=alive)
    tails = {name: [(line.stream, _clean(line.line)) for line in lines]
             for name, lines in tail_logs(place.logs_file, last=TAIL_LINES).items()}
    return RunView(ledger.pipeline, status, ledger.started, ledger.finished,
                   list(ledger.phases.values()), attempts, depends_on, tails)


def _clean(line: str) -> str:
    """A captured line without terminal escapes and control characters, cut short."""
    line = printable(line)
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "…"
