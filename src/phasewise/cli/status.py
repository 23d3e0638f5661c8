"""``phasewise status`` and ``phasewise cache``: what a work directory holds, read without
taking its lock (so a run in progress can be looked at)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from phasewise.cli.report import format_table
from phasewise.plugins.reporters import format_duration

__all__ = ["describe_status", "find_workdir", "format_cache_entries", "is_alive",
           "workdir_option"]


def find_workdir(given: str | None) -> Path:
    """``given``, or the one work directory under ``./.phasewise``; ``ValueError`` saying
    what to pass when there is none or more than one."""
    if given is not None:
        return Path(given)
    root = Path.cwd() / ".phasewise"
    found = sorted(p for p in root.glob("*") if (p / "pipeline-state.json").exists())
    if not found:
        raise ValueError(f"no run is recorded under {root}; pass --workdir DIR")
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise ValueError(f"several runs are recorded under {root} ({names}); pass --workdir "
                         "to pick one")
    return found[0]


def workdir_option(given: str | None) -> Path:
    """What ``--workdir`` names (``find_workdir``), for a command: ``BadInput`` (exit 2)
    saying what to pass when there is no such run."""
    from phasewise.cli.errors import BadInput

    try:
        return find_workdir(given)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_status(timeline: dict[str, Any], workdir: Path, pid: int) -> str:
    """The run in words: a headline, whether it runs or can be resumed, a row per phase."""
    status = timeline["status"]
    if status == "running" and not is_alive(pid):
        how = f"was interrupted (its process {pid} is gone)"
    elif status == "running":
        how = f"is running (process {pid})"
    else:
        how = status
    counts: dict[str, int] = {}
    for p in timeline["phases"]:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [f"pipeline {timeline['pipeline']!r} {how} after "
             f"{format_duration(timeline['elapsed'])} ({summary}); kept in {workdir}"]
    rows = [(p["name"], p["status"] + (" (cached)" if p["cached"] else ""),
             format_duration(p["elapsed"]), str(p["attempt"]), (p["error"] or "")[:80])
            for p in timeline["phases"]]
    lines += ["", format_table(("phase", "status", "duration", "attempts", "error"), rows)]
    if status != "completed" and not (status == "running" and is_alive(pid)):
        lines += ["", f"can be resumed: phasewise run TARGET --workdir {workdir} --resume"]
    return "\n".join(lines) + "\n"


def format_cache_entries(entries: list[Any]) -> str:
    if not entries:
        return "no cached results\n"
    rows = [(e.phase, e.key[:12], f"{e.size:,} B",
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created)))
            for e in entries]
    return format_table(("phase", "key", "size", "stored"), rows) + "\n"
