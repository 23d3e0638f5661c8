"""``phasewise watch``: the detail view of a run kept in a work directory, followed from
another process.

``watch_workdir(workdir) -> int`` follows it, read-only, in the terminal of stdin/stdout
(exit 2 through ``BadInput`` when they are not one); quitting never touches the run.
Its journal and log file are polled once a frame interval, and what they gained since
becomes actions of the view Store (``journal_action`` for a journal record); when the
directory's journal is replaced by a new run's, the view starts over on that run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from phasewise.cli.tui.loop import ViewLoop, log_height_for, view_store
from phasewise.cli.tui.terminal import Terminal
from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.state import make_reducer
from phasewise.core.store import Store
from phasewise.core.view import make_detail_reducer

__all__ = ["WATCH_MAX_LOGS", "journal_action", "watch_workdir"]

WATCH_MAX_LOGS = 1000
"""Lines kept per phase by ``phasewise watch`` (the newest)."""

_decode = msgspec.json.decode


def journal_action(record: Mapping[str, Any]) -> Action | None:
    """The Store action of one journal record (None for one that is not a transition).
    Times are the journal's own (seconds since the epoch)."""
    kind, at = record.get("k"), record.get("time", 0.0)
    if kind == "run":
        return Action(A.PIPELINE_START, at)
    if kind == "end":
        return Action(A.PIPELINE_COMPLETE, {"status": record.get("status"), "timestamp": at})
    if kind != "phase":
        return None
    name, status = record.get("phase", ""), record.get("status")
    payload: dict[str, Any] = {"name": name, "timestamp": at}
    if status == "running":
        payload.update(attempt=record.get("attempt", 1), executor=record.get("executor", ""),
                       worker=record.get("worker", ""))
        return Action(A.PHASE_START, payload)
    if status == "retrying":
        payload.update(attempt=record.get("attempt", 1), error=record.get("error", ""))
        return Action(A.PHASE_RETRY, payload)
    if status == "completed":
        payload.update(cached=bool(record.get("cached")))
        return Action(A.PHASE_COMPLETE, payload)
    types = {"failed": A.PHASE_FAILED, "skipped": A.PHASE_SKIPPED,
             "cancelled": A.PHASE_CANCELLED}
    if status not in types:
        return None
    payload["reason" if status == "cancelled" else "error"] = record.get("error", "")
    return Action(types[status], payload)


def _newest(lines: Iterable[Any], keep: int) -> list[Any]:
    """``lines`` without those that would be dropped anyway: the newest ``keep`` of each
    phase, in their order."""
    seen: dict[str, int] = {}
    out = []
    for line in reversed(list(lines)):
        count = seen.get(line.phase, 0)
        if count < keep:
            seen[line.phase] = count + 1
            out.append(line)
    out.reverse()
    return out


class _Follower:
    """The run kept in a work directory, followed: each ``poll`` turns what its journal
    and log file gained since into actions of ``store`` (a new one when the directory's
    journal is replaced by a new run's)."""

    def __init__(self, workdir: Any, log_height: Callable[[int], int]) -> None:
        self._workdir, self._log_height = workdir, log_height
        self.store: Store
        self.pid = 0
        self._load()

    def _load(self) -> None:
        from phasewise.durable.resume import load_ledger

        ledger = load_ledger(self._workdir)
        names = list(ledger.phases)
        self._names = frozenset(names)
        reducer = make_detail_reducer(make_reducer(
            ledger.pipeline, names,
            {n: float(p.get("weight", 1)) for n, p in ledger.phases.items()},
            dict.fromkeys(names, WATCH_MAX_LOGS)))
        self.store = view_store(reducer, self._log_height(len(names)))
        self.journal_id, self.pid = ledger.journal, ledger.pid
        self._journal_at = self._logs_at = 0

    def poll(self) -> None:
        from phasewise.durable.logs import read_logs

        header = self._journal_header()
        if header is not None and header != self.journal_id:
            self._load()  # a new run in this directory
        for record in self._journal_records():
            if record.get("k") == "run":
                self.pid = int(record.get("pid", 0))
            action = journal_action(record)
            if action is not None and (record.get("k") != "phase"
                                       or record.get("phase") in self._names):
                self.store.dispatch(action)
        lines, self._logs_at = read_logs(self._workdir.logs_file, self._logs_at)
        for line in _newest(lines, WATCH_MAX_LOGS):
            if line.phase in self._names:
                self.store.dispatch(Action(A.PHASE_LOG, {
                    "name": line.phase, "line": line.line, "stream": line.stream,
                    "timestamp": line.time}))

    def _journal_header(self) -> str | None:
        try:
            with open(self._workdir.journal_file, "rb") as f:
                return str(_decode(f.readline())["id"])
        except (OSError, msgspec.DecodeError, KeyError, TypeError):
            return None

    def _journal_records(self) -> list[dict[str, Any]]:
        """The complete records after the last ones read (header skipped)."""
        try:
            with open(self._workdir.journal_file, "rb") as f:
                if self._journal_at == 0:
                    f.readline()
                    self._journal_at = f.tell()
                f.seek(self._journal_at)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._journal_at += end
        records = []
        for raw in data[:end].split(b"\n"):
            try:
                record = _decode(raw) if raw else None
            except msgspec.DecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def note(self) -> str:
        from phasewise.cli.status import is_alive

        status = self.store.state.pipeline.status
        if status == "running" and self.pid and not is_alive(self.pid):
            return f"the run's process {self.pid} is gone"
        if status in ("completed", "failed", "cancelled"):
            return f"the run {status}"
        return ""


def watch_workdir(workdir: Path) -> int:
    """Follow the run kept in ``workdir`` in this terminal until q (or Ctrl-C: 130).
    Read-only: nothing in the work directory is changed, and quitting leaves the run be."""
    from phasewise.cli.errors import BadInput
    from phasewise.core.errors import UnsafeStoreError, WorkdirError
    from phasewise.durable.workdir import Workdir

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput("phasewise watch draws in a terminal, and its stdin and stdout are "
                       "not both one; to print the run's state once, use phasewise status")
    terminal = Terminal(sys.stdin.fileno(), sys.stdout)
    rows = terminal.size()[1]
    try:
        follower = _Follower(Workdir(workdir), lambda phases: log_height_for(rows, phases))
    except (WorkdirError, UnsafeStoreError) as exc:
        raise BadInput(str(exc)) from None
    loop = ViewLoop(terminal, lambda: follower.store, time.time, note=follower.note,
                     tick=follower.poll)
    try:
        with terminal:
            loop.run()
    except KeyboardInterrupt:
        return 130
    return 0

