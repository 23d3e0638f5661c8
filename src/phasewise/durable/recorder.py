"""Recorder: keeps a run in its work directory while it runs, from the Store's actions.

    Store.dispatch ─▶ observer(action) ─▶ result stored (COMPLETE) ─▶ journal record
                                       ├─▶ snapshot, at most every SNAPSHOT_EVERY s
                                       └─▶ a captured line ─▶ logs.jsonl (logs.py)

It runs in whichever thread dispatched the action (the runner's, for transitions), after
the reducer, so ``store.state`` already holds the phase's elapsed time. The journal
holds transitions (a phase's executor and worker with its start), not output: log lines
are counted there and kept in the log file.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.errors import PhasewiseWarning
from phasewise.core.store import Store
from phasewise.durable.journal import Journal
from phasewise.durable.ledger import Ledger
from phasewise.durable.logs import LogFile
from phasewise.durable.results import StoreFailed, store_result
from phasewise.durable.snapshot import write_snapshot
from phasewise.durable.workdir import Workdir

__all__ = ["SNAPSHOT_EVERY", "Recorder"]

SNAPSHOT_EVERY = 0.5
"""Seconds between two snapshots at most while transitions happen (and one at the end)."""

_STATUS = {
    A.PHASE_START: "running",
    A.PHASE_RETRY: "retrying",
    A.PHASE_COMPLETE: "completed",
    A.PHASE_FAILED: "failed",
    A.PHASE_SKIPPED: "skipped",
    A.PHASE_CANCELLED: "cancelled",
}


class Recorder:
    """Writes ``ledger``'s run to ``workdir`` as ``store``'s actions come (``attach``), and
    the lines phases print to ``logs``."""

    def __init__(self, workdir: Workdir, journal: Journal, ledger: Ledger,
                 logs: LogFile) -> None:
        self.workdir, self.journal, self.ledger, self.logs = workdir, journal, ledger, logs
        self._store: Store | None = None
        self._last_snapshot = 0.0
        self._dirty = False

    def attach(self, store: Store) -> None:
        self._store = store
        store.observe(self._observe)

    def _observe(self, action: Action) -> None:
        kind = action.type
        if kind == A.PHASE_LOG:
            payload = action.payload
            if isinstance(payload, Mapping):
                phase = self.ledger.phases.get(payload.get("name", ""))
                if phase is not None:
                    phase["log_count"] += 1
                    self._dirty = True
                    self.logs.write(phase["name"], str(payload.get("stream", "stdout")),
                                    str(payload.get("line", "")), time.time())
            return
        status = _STATUS.get(kind)
        if status is not None:
            self._phase(action, status)
        elif kind == A.PIPELINE_COMPLETE:
            state = self._store.state if self._store is not None else None
            self._write({"k": "end", "status": state.status if state else "completed",
                         "time": time.time()})
            self.snapshot()

    def _phase(self, action: Action, status: str) -> None:
        payload = action.payload
        if not isinstance(payload, Mapping):
            payload = {"name": payload}
        name = payload["name"]
        before = self.ledger.phases[name]
        now = time.time()
        record: dict[str, Any] = {"k": "phase", "phase": name, "status": status,
                                  "time": now}
        if payload.get("resumed"):  # completed in the run this one resumes: as it was
            self._write({**record, "result": before["result"]})
            return
        if status == "running":
            record.update(attempt=payload.get("attempt", 1), started=now, error="",
                          executor=payload.get("executor", ""), worker=payload.get("worker", ""))
        elif status == "retrying":
            record.update(attempt=payload.get("attempt", before["attempt"]),
                          error=str(payload.get("error", "")))
        else:
            record.update(finished=now, elapsed=self._elapsed(name),
                          error=str(payload.get("reason", payload.get("error", ""))))
        if status == "completed":
            record.update(cached=bool(payload.get("cached")), error="",
                          result=self._result(name, payload))
        self._write(record)

    def _result(self, name: str, payload: Mapping[str, Any]) -> dict[str, str] | None:
        try:
            return store_result(self.workdir, name, payload.get("result"))
        except StoreFailed as exc:
            warnings.warn(PhasewiseWarning(
                f"the result of phase {name!r} cannot be kept in {self.workdir.path} "
                f"({exc.reason}); a resumed run will run it again"), stacklevel=2)
            return None

    def _elapsed(self, name: str) -> float:
        if self._store is None:
            return 0.0
        try:
            return float(self._store.state.phase(name).elapsed)
        except KeyError:
            return 0.0

    def _write(self, record: dict[str, Any]) -> None:
        self.journal.append(record)
        self.ledger.apply((record,))
        self._dirty = True
        if time.monotonic() - self._last_snapshot >= SNAPSHOT_EVERY:
            self.snapshot()

    def snapshot(self) -> None:
        """Write the snapshot now (if anything changed since the last one)."""
        if self._dirty:
            write_snapshot(self.workdir.state_file, self.ledger.snapshot(self.journal.offset()))
            self._dirty = False
            self._last_snapshot = time.monotonic()
