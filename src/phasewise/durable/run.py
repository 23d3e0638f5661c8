"""open_run: a run kept in a work directory (what ``Pipeline.run(workdir=...)`` opens
through ``core.services``)."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phasewise.core.errors import PhasewiseWarning
from phasewise.core.model import Pipeline
from phasewise.core.phase import Phase, parse_ttl
from phasewise.core.services import PhaseCache
from phasewise.core.state import PipelineState
from phasewise.core.store import Store
from phasewise.durable.fingerprint import fingerprints, uses_params
from phasewise.durable.folders import PhaseFolders
from phasewise.durable.journal import Journal
from phasewise.durable.ledger import Ledger
from phasewise.durable.logs import LogFile
from phasewise.durable.recorder import Recorder
from phasewise.durable.resume import plan_resume
from phasewise.durable.snapshot import write_snapshot
from phasewise.durable.workdir import Workdir, WorkdirError

__all__ = ["DurableRun", "WorkdirCache", "open_run"]


def open_run(pipeline: Pipeline, workdir: str | os.PathLike[str], *, resume: bool = False,
             cache: bool = True, params: Mapping[str, Any] | None = None) -> DurableRun:
    """Take ``workdir`` for a run of ``pipeline`` (creating it, locking it) and start its
    record: afresh, or (``resume``) carrying on the run recorded there."""
    for phase in pipeline.phases:
        if phase.name in _reserved():
            raise WorkdirError(f"phase {phase.name!r} has a name phasewise keeps for its own "
                               f"files in a work directory ({', '.join(sorted(_reserved()))}); "
                               "rename the phase")
    place = Workdir(workdir)
    place.create()
    place.lock()
    try:
        return DurableRun(pipeline, place, resume=resume, cache=cache, params=params or {})
    except BaseException:
        place.unlock()
        raise


def _reserved() -> frozenset[str]:
    from phasewise.durable.workdir import RESERVED_NAMES

    return RESERVED_NAMES


class DurableRun:
    """A ``core.services.RunRecord`` kept in a work directory."""

    def __init__(self, pipeline: Pipeline, workdir: Workdir, *, resume: bool,
                 cache: bool, params: Mapping[str, Any]) -> None:
        self.workdir = workdir
        self.folders = PhaseFolders(workdir.path)
        prints = fingerprints(pipeline.phases, params)
        phases = [(n, prints[n], float(pipeline.phase(n).weight))
                  for n in pipeline.execution_order()]
        self.completed: Mapping[str, Any] = {}
        self.reruns: dict[str, str] = {}
        if resume and not workdir.state_file.exists():  # killed before it kept anything
            _warn(f"nothing to resume in {workdir.path}: no run of {pipeline.name!r} is "
                  "recorded there; every phase runs")
            resume = False
        if resume:
            plan = plan_resume(pipeline, workdir, prints)
            self.completed, self.reruns = plan.completed, plan.reruns
            for name, why in plan.reruns.items():
                _warn(f"resume: phase {name!r} runs again: {why}")
            journal = Journal(workdir.journal_file, fresh=False)
            ledger = Ledger.fresh(pipeline.name, phases, journal.id)
            for name in plan.completed:  # carried over: status, times, where the result is
                ledger.phases[name] = {**plan.ledger.phases[name],
                                       "fingerprint": ledger.phases[name]["fingerprint"]}
        else:
            journal_id = uuid.uuid4().hex
            ledger = Ledger.fresh(pipeline.name, phases, journal_id)
            # the new snapshot first: if the run dies before its journal is replaced, the
            # snapshot names a journal that does not exist yet, and the old one is ignored
            write_snapshot(workdir.state_file, ledger.snapshot(0))
            journal = Journal(workdir.journal_file, fresh=True, journal_id=journal_id)
        self.journal, self.ledger = journal, ledger
        self.logs = LogFile(workdir.logs_file, fresh=not resume)
        self.recorder = Recorder(workdir, journal, ledger, self.logs)
        # the dependency graph, for viewers (the report's critical path); older journals
        # have no "depends_on", and readers do without it
        depends_on = {n: list(pipeline.phase(n).depends_on) for n in pipeline.execution_order()}
        self.recorder._write({"k": "run", "run": uuid.uuid4().hex, "pid": os.getpid(),
                              "resume": resume, "time": time.time(),
                              "depends_on": depends_on})
        self.recorder.snapshot()
        self.cache: PhaseCache | None = WorkdirCache(workdir.cache_dir) if cache else None

    def attach(self, store: Store) -> None:
        self.recorder.attach(store)

    def close(self, state: PipelineState) -> None:
        try:
            if self.ledger.status == "running":  # ended without @@PIPELINE_COMPLETE
                status = state.status if state.status in ("failed", "cancelled") else "failed"
                self.recorder._write({"k": "end", "status": status, "time": time.time()})
            self.recorder.snapshot()
        finally:
            self.journal.close()
            self.logs.close()
            self.workdir.unlock()


class WorkdirCache:
    """``core.services.PhaseCache`` over a ``ResultCache`` in the work directory."""

    def __init__(self, directory: Path) -> None:
        from phasewise.durable.cache import ResultCache
        from phasewise.durable.safety import make_private_dir

        make_private_dir(directory)
        self._cache = ResultCache(directory)
        self._keys: dict[str, str | None] = {}

    def lookup(self, phase: Phase, context: Mapping[str, Any] | None,
               params: Mapping[str, Any] | None) -> tuple[bool, Any]:
        from phasewise.durable.cache import cache_key

        key = cache_key(phase, context, dict(params) if uses_params(phase) and params else None)
        self._keys[phase.name] = key
        if key is None:
            _warn(f"phase {phase.name!r} runs uncached: its inputs cannot be pickled")
            return False, None
        found = self._cache.get(key, parse_ttl(phase.cache))
        if found.warning:
            _warn(found.warning)
        return found.hit, found.value

    def store(self, phase: Phase, context: Mapping[str, Any] | None,
              params: Mapping[str, Any] | None, result: Any) -> None:
        key = self._keys.pop(phase.name, None)
        if key is None:
            return
        warning = self._cache.put(key, phase.name, result)
        if warning:
            _warn(warning)


def _warn(message: str) -> None:
    warnings.warn(PhasewiseWarning(message), stacklevel=3)
