"""What ``phasewise run`` writes: live progress lines, the summary table, the JSON document.

The progress reporter observes the Store (``store.observe``), so it is told each action
as it is reduced and reads only that phase's status. It writes to the stream it was
given when the run started, never to whatever ``sys.stderr`` is at the moment: while a
phase captures its output, ``sys.stderr`` in that phase's thread feeds the Store, and
writing there from a listener would loop.

The run's opening lines (``phasewise: running ...``) are written when the reporter sees
``@@PIPELINE_START``, so a run that never starts (its executors refused their options)
prints nothing but its error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.state import PhaseStatus, PipelineState
from phasewise.core.store import Store
from phasewise.core.timeline import pipeline_to_timeline

__all__ = [
    "ProgressReporter",
    "attempts",
    "format_duration",
    "format_summary",
    "format_table",
    "json_document",
]

Reducer = Callable[[Any, Action], Any]

_TRANSITIONS = {
    A.PHASE_START: "start",
    A.PHASE_RETRY: "retry",
    A.PHASE_COMPLETE: "done",
    A.PHASE_FAILED: "FAILED",
    A.PHASE_SKIPPED: "skipped",
    A.PHASE_CANCELLED: "cancelled",
}


class ProgressReporter:
    """Writes one line per phase transition, and each captured line, to ``stream``.

    ``opening`` lines are written as they are, without a time, when the run starts
    (``@@PIPELINE_START``).
    """

    def __init__(
        self, stream: TextIO, *, show_logs: bool = True, opening: Sequence[str] = ()
    ) -> None:
        self._stream = stream
        self._show_logs = show_logs
        self._opening = tuple(opening)

    def attach(self, store: Store) -> Callable[[], None]:
        """Observe ``store``'s actions; returns the function that stops it."""
        return store.observe(lambda action: self._report(action, store))

    def _report(self, action: Action, store: Store) -> None:
        if action.type == A.PIPELINE_START:
            self._open()
            return
        payload: Mapping[str, Any] = {}
        if isinstance(action.payload, Mapping):
            payload = action.payload
            name = payload.get("name")
        else:
            name = action.payload  # a phase action may carry the phase's name alone
        if not isinstance(name, str):
            return
        line = self._line_for(action.type, name, payload, store.state)
        if line is not None:
            self._write(store.state, line)

    def _line_for(
        self, kind: str, name: str, payload: Mapping[str, Any], state: PipelineState
    ) -> str | None:
        if kind == A.PHASE_LOG:
            if not self._show_logs:
                return None
            mark = "!" if payload.get("stream") == "stderr" else "|"
            return f"{name} {mark} {payload.get('line', '')}"
        label = _TRANSITIONS.get(kind)
        if label is None:
            return None
        try:
            phase = state.phase(name)
        except KeyError:
            return None
        return f"{label:<9} {name}{_transition_detail(kind, phase, payload)}"

    def _open(self) -> None:
        opening, self._opening = self._opening, ()  # once, even if the run were restarted
        if opening:
            self._stream.write("".join(f"{line}\n" for line in opening))
            self._stream.flush()

    def _write(self, state: PipelineState, line: str) -> None:
        since = time.monotonic() - state.started_at if state.started_at else 0.0
        self._stream.write(f"[{since:7.2f}s] {line}\n")
        self._stream.flush()


def _transition_detail(kind: str, phase: PhaseStatus, payload: Mapping[str, Any]) -> str:
    if kind == A.PHASE_START:
        return f" (attempt {phase.attempt})" if phase.attempt > 1 else ""
    if kind == A.PHASE_COMPLETE:
        return f" in {format_duration(phase.elapsed)}"
    if kind == A.PHASE_RETRY:
        total = int(payload.get("max_retries", 0)) + 1
        return f": {_first_line(phase.error)}; attempt {phase.attempt} of {total} follows"
    if kind == A.PHASE_FAILED:
        return f" after {format_duration(phase.elapsed)}: {_first_line(phase.error)}"
    return f": {_first_line(phase.error)}" if phase.error else ""


# ── after the run ───────────────────────────────────────────────────────────


def format_duration(seconds: float) -> str:
    return f"{seconds:.2f}s"


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    body = [list(map(str, row)) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in body)])


def format_summary(
    state: PipelineState, order: Sequence[str] | None = None, *, interrupted: bool = False
) -> str:
    """The end-of-run report: a headline, a row per phase, then failed phases' tracebacks.

    ``order`` lists the phase names in the order to show them (``phasewise run`` passes
    ``pipeline.execution_order()``, the order of ``phasewise list``); without it, the
    phases come in declaration order.
    """
    counts = ", ".join(f"{n} {status}" for status, n in state.counts().items())
    how = "interrupted" if interrupted else state.status
    head = f"pipeline {state.name!r} {how} in {format_duration(state.elapsed)} ({counts})"
    phases = _in_order(state, order)
    if order is not None:
        head += "; phases in execution order"
    rows = [
        (p.name, p.status + (" (cached)" if p.cached else ""), format_duration(p.elapsed),
         str(attempts(p)), _first_line(p.error, 80))
        for p in phases
    ]
    parts = [head, "", format_table(("phase", "status", "duration", "attempts", "error"), rows)]
    for p in phases:
        if p.status == "failed" and p.traceback:
            parts += ["", f"phase {p.name!r} failed: {p.error}", p.traceback.rstrip()]
    return "\n".join(parts) + "\n"


def attempts(phase: PhaseStatus) -> int:
    """How many times ``phase`` started: 0 for one that never did (``PhaseStatus.attempt``
    is 1 from the outset, the number of the attempt that comes next)."""
    never_started = phase.status in ("pending", "cancelled") and not phase.started_at
    return 0 if never_started else phase.attempt


def _in_order(state: PipelineState, order: Sequence[str] | None) -> list[PhaseStatus]:
    if order is None:
        return list(state.phases)
    by_name = {p.name: p for p in state.phases}
    listed = [by_name[name] for name in order if name in by_name]
    seen = set(order)
    return listed + [p for p in state.phases if p.name not in seen]  # none, unless out of step


def json_document(state: PipelineState, results: Mapping[str, Any]) -> str:
    """``pipeline_to_timeline(state)`` plus ``"results"``: JSON values kept, others repr'd."""
    doc = pipeline_to_timeline(state)
    doc["results"] = {name: _jsonable(value) for name, value in results.items()}
    return json.dumps(doc, indent=2)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value
