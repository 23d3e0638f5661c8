"""``phasewise run --dry-run``: what a run would do, worked out without running anything
and without taking the work directory's lock.

For each phase, in execution order: whether it would run; whether ``--resume`` would keep
it from the last run (``durable.resume.plan_resume``, as a real resumed run decides); and,
for a phase with ``Phase(cache=...)``, whether its result is cached. A phase's cache key
covers its inputs, which are known before the run only when it has no dependencies or
``--resume`` keeps all of them; for the others the plan says what is stored for the
phase and that it is used only if the inputs turn out the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phasewise.cli.describe import condition_name
from phasewise.cli.report import format_table
from phasewise.core.model import Pipeline
from phasewise.core.phase import Phase, parse_ttl

__all__ = ["DryRun", "describe_dry_run", "plan_dry_run"]


@dataclass
class DryRun:
    """The plan: ``steps`` is ``(phase, what it would do)`` in execution order; ``notes``
    are lines to show above it; ``counts`` how many phases fall in each kind."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, phase: str, kind: str, text: str) -> None:
        self.steps.append((phase, text))
        self.counts[kind] = self.counts.get(kind, 0) + 1


def plan_dry_run(pipeline: Pipeline, workdir: Path, params: Mapping[str, Any], *,
                 resume: bool, cache: bool, pause_after: Iterable[str] = ()) -> DryRun:
    """What a run of ``pipeline`` kept in ``workdir`` would do. Raises what reading the
    work directory raises (``WorkdirError``, ``UnsafeStoreError``), as the run would."""
    from phasewise.durable.fingerprint import fingerprints
    from phasewise.durable.resume import plan_resume
    from phasewise.durable.workdir import Workdir

    place = Workdir(workdir)
    plan = DryRun()
    kept: dict[str, Any] = {}
    reruns: dict[str, str] = {}
    if resume and place.state_file.exists():
        resumed = plan_resume(pipeline, place, fingerprints(pipeline.phases, params))
        kept, reruns = resumed.completed, resumed.reruns
    elif resume:
        plan.notes.append(f"nothing to resume in {place.path}: no run is recorded there, "
                          "so every phase would run")
    lookup = _CacheLookup(place.cache_dir, params) if cache else None
    pauses = set(pause_after)
    for name in pipeline.execution_order():
        phase = pipeline.phase(name)
        if name in kept:
            plan.add(name, "kept", "not run: it completed in the last run (--resume keeps "
                                   "its result)")
            continue
        kind, text = "run", "run" + (f" again: {reruns[name]}" if name in reruns else "")
        if phase.cache is not False:
            if lookup is None:
                text += " (--no-cache)"
            else:
                kind, text = lookup.describe(phase, kept, text)
        if phase.when is not None:  # evaluated just before the phase would start
            text = f"if its condition {condition_name(phase.when)} holds: {text}"
        if phase.review or name in pauses:
            text += "; then pause for review (on a terminal)"
        plan.add(name, kind, text)
    return plan


def describe_dry_run(pipeline: Pipeline, plan: DryRun, *, executor: str, workdir: Path,
                     params: Mapping[str, Any]) -> str:
    """The plan as text: a headline, the params, the notes, a table, the totals."""
    exists = "" if workdir.exists() else " (not created yet)"
    lines = [f"dry run of {pipeline.name!r} ({len(pipeline)} phases) on {executor!r}: "
             f"nothing is run; work directory {workdir}{exists}"]
    if params:
        lines.append("params: " + ", ".join(f"{k}={_show(v)}" for k, v in params.items()))
    lines += plan.notes
    rows = [(str(i), name, text) for i, (name, text) in enumerate(plan.steps, start=1)]
    lines += ["", format_table(("#", "phase", "would"), rows), ""]
    words = {"run": "would run", "cached": "cached",
             "maybe": "cached if their inputs are unchanged", "kept": "kept by --resume"}
    lines.append(", ".join(f"{plan.counts[k]} {w}" for k, w in words.items()
                           if plan.counts.get(k)) or "no phases")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class _CacheLookup:
    """Looks in the result cache without loading anything: entry headers only."""

    def __init__(self, directory: Path, params: Mapping[str, Any]) -> None:
        from phasewise.durable.cache import ResultCache
        from phasewise.durable.safety import check_private

        self.cache = ResultCache(directory)
        self.params = params
        self.stored: dict[str, int] = {}
        if directory.exists():
            check_private(directory, "the result cache")  # as a run would, before loading
            for entry in self.cache.entries():
                self.stored[entry.phase] = self.stored.get(entry.phase, 0) + 1

    def describe(self, phase: Phase, kept: Mapping[str, Any], text: str) -> tuple[str, str]:
        """``(kind, text)`` for a cached phase that would otherwise ``text``."""
        from phasewise.durable.cache import cache_key
        from phasewise.durable.fingerprint import uses_params

        count = self.stored.get(phase.name, 0)
        if any(dep not in kept for dep in phase.depends_on):  # its inputs are not known yet
            if not count:
                return "run", f"{text} (nothing is cached for it yet)"
            stored = f"{count} result{'s' if count != 1 else ''} stored"
            return "maybe", f"use its cached result if its inputs are unchanged ({stored}), " \
                            f"else {text}"
        context = {dep: kept[dep] for dep in phase.depends_on}
        params = dict(self.params) if uses_params(phase) and self.params else None
        key = cache_key(phase, context, params)
        if key is None:
            return "run", f"{text} (its inputs cannot be cached)"
        return self._entry(phase, key, text)

    def _entry(self, phase: Phase, key: str, text: str) -> tuple[str, str]:
        from phasewise.durable.signing import read_signed_meta

        path = self.cache.path_for(key)
        if not path.exists():
            return "run", f"{text} (no cached result for its inputs)"
        try:
            meta = read_signed_meta(path)
        except Exception:  # a damaged entry: the run would remove it and run the phase
            return "run", f"{text} (its cached entry is damaged)"
        created = meta.get("created")
        if meta.get("key") != key or not isinstance(created, (int, float)):
            return "run", f"{text} (its cached entry is damaged)"
        ttl = parse_ttl(phase.cache)
        if ttl is not None and time.time() - created >= ttl:
            return "run", f"{text} (its cached result is older than {phase.cache})"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        return "cached", f"use its cached result (stored {when})"
