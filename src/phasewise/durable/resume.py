"""What a resumed run need not run again: the phases that completed in the run kept in
the work directory, whose definition is unchanged, whose dependencies are not run again
and whose results still load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phasewise.core.errors import UnsafeStoreError
from phasewise.core.model import Pipeline
from phasewise.durable.fingerprint import fingerprints
from phasewise.durable.journal import read_journal
from phasewise.durable.ledger import Ledger
from phasewise.durable.results import load_result
from phasewise.durable.snapshot import read_snapshot
from phasewise.durable.workdir import Workdir, WorkdirError

__all__ = ["ResumePlan", "load_ledger", "plan_resume"]


def load_ledger(workdir: Workdir, pipeline: str | None = None) -> Ledger:
    """The run recorded in ``workdir``: its snapshot, brought up to date with the journal.
    Reads only (no lock): a run in progress can be looked at."""
    from phasewise.durable.safety import check_private

    for path in (workdir.state_file, workdir.journal_file):
        if path.exists():
            check_private(path, "the run's state")
    snapshot = read_snapshot(workdir.state_file, pipeline)
    ledger = Ledger(snapshot)
    ledger.apply(read_journal(workdir.journal_file, snapshot["journal"], snapshot["offset"]))
    return ledger


@dataclass
class ResumePlan:
    """``completed``: results of the phases not to run again; ``reruns``: the phases that
    completed before but run again, with why."""

    ledger: Ledger
    completed: dict[str, Any] = field(default_factory=dict)
    reruns: dict[str, str] = field(default_factory=dict)


def plan_resume(pipeline: Pipeline, workdir: Workdir,
                prints: Mapping[str, str] | None = None) -> ResumePlan:
    """Which phases need not run (``prints``: the phases' fingerprints, if known)."""
    if not workdir.state_file.exists():
        raise WorkdirError(f"nothing to resume in {workdir.path}: no run of "
                           f"{pipeline.name!r} is recorded there (run without --resume)")
    plan = ResumePlan(load_ledger(workdir, pipeline.name))
    prints = prints if prints is not None else fingerprints(pipeline.phases)
    for name in pipeline.execution_order():
        phase = pipeline.phase(name)
        before = plan.ledger.phases.get(name)
        if before is None or before["status"] != "completed":
            continue
        if before["fingerprint"] != prints[name]:
            plan.reruns[name] = "its definition changed (handler code, dependencies or options)"
            continue
        rerun = [dep for dep in phase.depends_on if dep not in plan.completed]
        if rerun:
            plan.reruns[name] = f"its dependency {rerun[0]!r} runs again"
            continue
        if before["result"] is None:
            plan.reruns[name] = "its result could not be kept"
            continue
        try:
            plan.completed[name] = load_result(workdir, before["result"])
        except (UnsafeStoreError, OSError) as exc:
            plan.reruns[name] = f"its stored result was refused ({exc})"
    return plan
