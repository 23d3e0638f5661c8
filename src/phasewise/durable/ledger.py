"""Ledger: a run as its work directory knows it — each phase's last recorded status,
where its result is kept — built from a snapshot and the journal records after it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from phasewise.durable.snapshot import SCHEMA

__all__ = ["Ledger"]

_DONE = ("completed", "skipped")


class Ledger:
    """Per phase (in the pipeline's execution order): ``status``, ``attempt``,
    ``started``/``finished`` (wall clock), ``elapsed``, ``error``, ``cached``, ``result``
    (where it is kept, or None), ``fingerprint``, ``weight``, ``log_count``, and the
    ``executor`` and ``worker`` of its last start (empty in a journal written before
    phasewise recorded them)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.pipeline: str = snapshot["pipeline"]
        self.status: str = snapshot["status"]
        self.journal: str = snapshot["journal"]
        self.started: float = snapshot.get("started", 0.0)
        self.finished: float = snapshot.get("finished", 0.0)
        self.pid: int = snapshot.get("pid", 0)
        self.phases: dict[str, dict[str, Any]] = {p["name"]: p for p in snapshot["phases"]}

    @classmethod
    def fresh(cls, pipeline: str, phases: Sequence[tuple[str, str, float]],
              journal: str) -> Ledger:
        """A ledger of a run that has not started: ``phases`` are (name, fingerprint,
        weight) in execution order."""
        return cls({"pipeline": pipeline, "status": "pending", "journal": journal,
                    "phases": [_pending(name, fp, weight) for name, fp, weight in phases]})

    def apply(self, records: Iterable[dict[str, Any]]) -> None:
        """Bring the ledger up to date with journal ``records``."""
        for record in records:
            kind = record.get("k")
            if kind == "phase":
                phase = self.phases.get(record.get("phase", ""))
                if phase is not None:
                    phase.update((k, v) for k, v in record.items() if k not in ("k", "phase"))
            elif kind == "run":
                self.status, self.started, self.pid = "running", record["time"], record["pid"]
                self.finished = 0.0
            elif kind == "end":
                self.status, self.finished = record["status"], record["time"]

    def snapshot(self, offset: int) -> dict[str, Any]:
        return {"schema": SCHEMA, "pipeline": self.pipeline, "status": self.status,
                "journal": self.journal, "offset": offset, "started": self.started,
                "finished": self.finished, "pid": self.pid, "updated": time.time(),
                "phases": list(self.phases.values())}

    def timeline(self) -> dict[str, Any]:
        """The ``pipeline_to_timeline`` document of the run as recorded."""
        total = sum(p["weight"] for p in self.phases.values())
        done = sum(p["weight"] for p in self.phases.values() if p["status"] in _DONE)
        end = self.finished or time.time()
        return {
            "pipeline": self.pipeline,
            "status": self.status,
            "elapsed": round(end - self.started, 3) if self.started else 0.0,
            "progress": round(done / total, 3) if total > 0 else 1.0,
            "phases": [
                {"name": p["name"], "status": p["status"], "elapsed": round(p["elapsed"], 3),
                 "attempt": p["attempt"], "error": p["error"] or None,
                 "log_count": p["log_count"], "cached": p["cached"]}
                for p in self.phases.values()
            ],
        }


def _pending(name: str, fingerprint: str, weight: float) -> dict[str, Any]:
    return {"name": name, "fingerprint": fingerprint, "weight": weight, "status": "pending",
            "attempt": 0, "started": 0.0, "finished": 0.0, "elapsed": 0.0, "error": "",
            "cached": False, "result": None, "log_count": 0, "executor": "", "worker": ""}
