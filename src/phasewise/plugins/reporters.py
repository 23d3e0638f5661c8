"""The built-in reporters: plugins on the run hooks, as a third party's would be.

``ProgressReporter`` writes what ``phasewise run`` shows (seed 004): ``[2/4]
Preprocessing...`` as each phase starts (the count of phases begun so far, of all, and
the phase's label), ``[RETRY] name: error`` before a retry, ``[FAIL]`` / ``[SKIP]`` /
``[CANCELLED]`` when a phase that had started ends so, and each captured line as
``name | line`` (``name ! line`` for stderr). When the run ends, ``format_summary``: a
headline, one line per phase in execution order (``  [OK] preprocess  (1.2s)``,
``[FAIL]`` with the error, ``[SKIP]`` with the reason, ``[CACHED]``, ``[CANCELLED]``),
each phase's warnings under it, then the tracebacks of failed phases.

``EventsReporter`` writes ``--events FILE``: every action as one JSON line, flushed as it
happens, so that another program can follow the run.

The CLI registers them with the plugin manager for the length of a run (``cli/run.py``);
the hooks are called by ``Pipeline.run`` itself (``plugins/run_hooks.py``), so they see
the same runs a third party's reporter does.

The progress reporter observes the Store (``store.observe``), so it is told each action
as it is reduced and reads only that phase's status. It writes to the stream it was
given, never to whatever ``sys.stderr`` is at the moment: while a phase captures its
output, ``sys.stderr`` in that phase's thread feeds the Store, and writing there from a
listener would loop. The run's opening lines (``phasewise: running ...``) are written
when the reporter sees ``@@PIPELINE_START``, so a run that never starts (its executors
refused their options) prints nothing but its error.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, TextIO

import msgspec

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.errors import PhasewiseWarning
from phasewise.core.state import PhaseStatus, PipelineState
from phasewise.core.store import Store
from phasewise.plugins.markers import hookimpl

__all__ = [
    "EventsReporter",
    "ProgressReporter",
    "attempts",
    "elapsed_text",
    "format_duration",
    "format_summary",
    "is_warning",
    "printable",
    "short_duration",
    "where_text",
]

_WARNING = re.compile(r"^(warning: |on_success hook raised |on_failure hook raised )")


def is_warning(line: str) -> bool:
    """Whether a line a phase logged on stderr is one phasewise logged for it: a
    validation warning (``warning: ...``) or a hook that raised."""
    return bool(_WARNING.match(line))


class _OneRun:
    """A reporter made for one run: it follows the first run it is shown and ignores any
    other, such as a pipeline that one of its phases runs in the same process."""

    _pipeline: Any = None

    def _follows(self, pipeline: Any, *, starting: bool = False) -> bool:
        if starting and self._pipeline is None:
            self._pipeline = pipeline
        return pipeline is self._pipeline


class ProgressReporter(_OneRun):
    """Writes seed 004's progress lines, each captured line, and the summary, to ``stream``.

    ``opening`` lines are written as they are when the run starts (``@@PIPELINE_START``).
    ``labels`` give the text of the start lines (the phase's name when missing; as a
    plugin, the pipeline's labels). ``quiet``: no progress lines, and a summary of the
    failed phases only, if the run did not complete. ``again`` is the line that says how
    to carry a run that did not complete on. ``resumed`` names the phases a resumed run
    did not run again (they completed in the run it carries on).
    """

    def __init__(
        self, stream: TextIO, *, show_logs: bool = True, opening: Sequence[str] = (),
        labels: Mapping[str, str] | None = None, quiet: bool = False, again: str = "",
    ) -> None:
        self._stream = stream
        self._show_logs = show_logs
        self._opening = tuple(opening)
        self._labels = dict(labels or {})
        self._quiet = quiet
        self._again = again
        self._started = False
        self._numbers: dict[str, int] = {}  # phase -> n of its "[n/N]" line
        self._lock = threading.RLock()
        self._detach: Callable[[], None] | None = None
        self.resumed: set[str] = set()

    @hookimpl
    def phasewise_run_start(self, pipeline: Any, store: Store) -> None:
        if not self._follows(pipeline, starting=True):
            return
        self._labels = {p.name: p.label for p in pipeline.phases} | self._labels
        self._detach = self.attach(store)

    @hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        """The summary, unless the run never started or something other than Ctrl-C
        stopped it (the caller reports that error on its own)."""
        if not self._follows(pipeline):
            return
        if self._detach is not None:  # a store the caller keeps is not observed on
            self._detach()
        if not self._started or not (error is None or isinstance(error, KeyboardInterrupt)):
            return
        text = ""
        if not (self._quiet and result.ok):
            text = "\n" + format_summary(result.state, pipeline.execution_order(),
                                         interrupted=result.interrupted,
                                         resumed=self.resumed, failures_only=self._quiet)
        if not result.ok and self._again:
            text += f"\n{self._again}\n"
        self._stream.write(text)
        self._stream.flush()

    def attach(self, store: Store) -> Callable[[], None]:
        """Observe ``store``'s actions; returns the function that stops it.

        A reporter that breaks (its stream was closed, say) says so once and stops: an
        observer's exception would otherwise reach the run, through ``dispatch``."""
        stop: Callable[[], None] | None = None

        def observe(action: Action) -> None:
            try:
                self._report(action, store)
            except Exception as exc:
                if stop is not None:
                    stop()
                warnings.warn(PhasewiseWarning(
                    f"{type(self).__name__} stopped reporting the run: "
                    f"{type(exc).__name__}: {exc}"), stacklevel=2)

        stop = store.observe(observe)
        return stop

    def _report(self, action: Action, store: Store) -> None:
        if action.type == A.PIPELINE_START:
            self._started = True
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
        if self._quiet:  # no lines to write: only what the summary needs
            if action.type == A.PHASE_COMPLETE and payload.get("resumed"):
                self.resumed.add(name)
            return
        state = store.state
        try:
            phase = state.phase(name)
        except KeyError:
            return
        with self._lock:  # numbers are handed out in the order lines are written
            line = self._line_for(action.type, phase, payload, len(state.phases))
            if line is not None:
                self._stream.write(line + "\n")
                self._stream.flush()

    def _line_for(self, kind: str, phase: PhaseStatus, payload: Mapping[str, Any],
                  total: int) -> str | None:
        name = phase.name
        if kind == A.PHASE_LOG:
            line = str(payload.get("line", ""))
            stderr = payload.get("stream") == "stderr"
            if not self._show_logs and not (stderr and is_warning(line)):
                return None
            return f"{name} {'!' if stderr else '|'} {line}"
        if kind == A.PHASE_START:
            again = f" (attempt {phase.attempt})" if phase.attempt > 1 else ""
            return f"{self._begin(name, total)}...{again}"
        if kind == A.PHASE_RETRY:
            of = int(payload.get("max_retries", 0)) + 1
            return (f"[RETRY] {name}: {_first_line(phase.error)}; attempt {phase.attempt} "
                    f"of {of} follows")
        if kind == A.PHASE_COMPLETE:
            if payload.get("resumed"):
                self.resumed.add(name)
            if name in self._numbers:
                return None
            how = "cached" if phase.cached else (
                "kept from the last run" if payload.get("resumed") else "done")
            return f"{self._begin(name, total)}... {how}"
        if kind == A.PHASE_SKIPPED:
            if name not in self._numbers:  # its condition was false: it never started
                return f"{self._begin(name, total)}... skipped: {_first_line(phase.error)}"
            return f"[SKIP] {name}: {_first_line(phase.error)}"
        if kind == A.PHASE_FAILED:
            return f"[FAIL] {name}: {_first_line(phase.error)}"
        if kind == A.PHASE_CANCELLED and name in self._numbers:
            return f"[CANCELLED] {name}: {_first_line(phase.error)}"
        return None

    def _begin(self, name: str, total: int) -> str:
        n = self._numbers.setdefault(name, len(self._numbers) + 1)
        return f"[{n}/{total}] {self._labels.get(name) or name}"

    def _open(self) -> None:
        opening, self._opening = self._opening, ()  # once, even if the run were restarted
        if opening and not self._quiet:
            self._stream.write("".join(f"{line}\n" for line in opening))
            self._stream.flush()


class EventsReporter(_OneRun):
    """Writes every action of a run to ``file`` as one JSON line, flushed as it happens.

    Each line is ``{"time": <seconds since the epoch>, "type": ..., "payload": ...}``;
    the first and last have the types ``run_start`` (the pipeline's name, the executor,
    its phases with what they depend on) and ``run_finish`` (the final status and
    counts). A phase's result is written when it is a JSON value of at most
    ``RESULT_LIMIT`` bytes; else ``"result"`` is left out and ``"result_type"`` names its
    type. Values JSON has no form for are written as their ``repr``.
    """

    RESULT_LIMIT = 4096

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._encode = msgspec.json.Encoder(enc_hook=repr).encode
        self._plain = msgspec.json.Encoder().encode

    @hookimpl
    def phasewise_run_start(self, pipeline: Any, executor: str) -> None:
        if not self._follows(pipeline, starting=True):
            return
        phases = [{"name": p.name, "depends_on": list(p.depends_on)} for p in pipeline.phases]
        self._write("run_start", {"pipeline": pipeline.name, "executor": executor,
                                  "phases": phases})

    @hookimpl
    def phasewise_action(self, pipeline: Any, action: Action) -> None:
        if not self._follows(pipeline):
            return
        payload = action.payload
        if isinstance(payload, Mapping) and "result" in payload:
            payload = self._without_large_result(payload)
        self._write(action.type, payload)

    @hookimpl
    def phasewise_run_finish(self, pipeline: Any, result: Any,
                             error: BaseException | None) -> None:
        if not self._follows(pipeline):
            return
        self._write("run_finish", {"status": result.status, "counts": result.counts,
                                   "interrupted": result.interrupted,
                                   "error": None if error is None else repr(error)})

    def _without_large_result(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        value = out["result"]
        try:
            fits = len(self._plain(value)) <= self.RESULT_LIMIT
        except (TypeError, ValueError, OverflowError):
            fits = False
        if not fits:
            del out["result"]
            out["result_type"] = type(value).__qualname__
        return out

    def _write(self, kind: str, payload: Any) -> None:
        line = self._encode({"time": time.time(), "type": kind, "payload": payload})
        self._file.write(line + b"\n")
        self._file.flush()


# ── after the run ───────────────────────────────────────────────────────────


def format_duration(seconds: float) -> str:
    return f"{seconds:.2f}s"


def short_duration(seconds: float) -> str:
    """``0.04s``, ``1.2s``, ``2m05s``: what the summary shows."""
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def where_text(executor: str, worker: str) -> str:
    """Where a phase ran, for a display: ``process · pid 812``, ``thread``; empty for
    a phase that never started."""
    return f"{executor} · {worker}" if executor and worker else executor


def elapsed_text(p: PhaseStatus, now: float) -> str:
    """How long phase ``p`` has run, for a display: counted up to ``now``
    (``time.monotonic()``) while it runs; empty for a phase that never started."""
    if p.status in ("running", "retrying") and p.started_at:
        return short_duration(max(0.0, now - p.started_at))
    if p.status == "pending" or not (p.elapsed or p.started_at):
        return ""
    return short_duration(p.elapsed)


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|"
                      r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(line: str) -> str:
    """A captured line as a display may draw it: without the terminal's escape sequences
    (colors, cursor moves, titles) and control characters, which would move or repaint
    what is drawn around it."""
    return _CONTROL.sub("", line.replace("\t", " "))


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


_TAGS = {"completed": "OK", "failed": "FAIL", "skipped": "SKIP", "cancelled": "CANCELLED",
         "pending": "PENDING", "running": "RUNNING", "retrying": "RETRYING"}


def format_summary(
    state: PipelineState, order: Sequence[str] | None = None, *, interrupted: bool = False,
    resumed: Iterable[str] = (), failures_only: bool = False,
) -> str:
    """The end-of-run report: a headline, a line per phase, then failed phases' tracebacks.

    ``order`` lists the phase names in the order to show them (``phasewise run`` passes
    ``pipeline.execution_order()``, the order of ``phasewise list``); without it, the
    phases come in declaration order. ``resumed`` names phases a resumed run kept from
    the run it carried on. ``failures_only`` (``-q``): only the failed phases' lines.
    """
    counts = ", ".join(f"{n} {status}" for status, n in state.counts().items())
    how = "interrupted" if interrupted else state.status
    head = f"pipeline {state.name!r} {how} in {format_duration(state.elapsed)} ({counts})"
    phases = _in_order(state, order)
    if order is not None:
        head += "; phases in execution order"
    shown = [p for p in phases if p.status == "failed"] if failures_only else phases
    parts = [head, "", *_phase_lines(shown, set(resumed))]
    for p in phases:
        if p.status == "failed" and p.traceback:
            parts += ["", f"phase {p.name!r} failed: {p.error}", p.traceback.rstrip()]
    return "\n".join(parts) + "\n"


def _phase_lines(phases: Sequence[PhaseStatus], resumed: set[str]) -> list[str]:
    """``  [TAG] name  (duration)  detail`` per phase, tags and names padded to a column,
    and under each, the warnings phasewise logged for it."""
    tags = {p.name: "CACHED" if p.cached else _TAGS.get(p.status, p.status.upper())
            for p in phases}
    tag_width = max((len(t) + 2 for t in tags.values()), default=0)
    name_width = max((len(p.name) for p in phases), default=0)
    lines = []
    for p in phases:
        head = f"  {'[' + tags[p.name] + ']':<{tag_width}} {p.name:<{name_width}}"
        lines.append(f"{head}  {_detail(p, p.name in resumed)}".rstrip())
        indent = " " * (3 + tag_width)
        lines += [f"{indent}{log.line}" for log in p.logs
                  if log.stream == "stderr" and is_warning(log.line)]
    return lines


def _detail(p: PhaseStatus, resumed: bool) -> str:
    if attempts(p) == 0:  # never started: cancelled (or pending), or skipped by its condition
        return _first_line(p.error, 80) or "not started"
    timing = short_duration(p.elapsed)
    if p.attempt > 1:
        timing += f", {p.attempt} attempts"
    if resumed:
        timing = "kept from the last run"
    error = _first_line(p.error, 80) if p.status in ("failed", "skipped", "cancelled") else ""
    return f"({timing})  {error}" if error else f"({timing})"


def attempts(phase: PhaseStatus) -> int:
    """How many times ``phase`` started: 0 for one that never did (``PhaseStatus.attempt``
    is 1 from the outset, the number of the attempt that comes next)."""
    never_started = phase.status in ("pending", "cancelled", "skipped") and not phase.started_at
    return 0 if never_started else phase.attempt


def _in_order(state: PipelineState, order: Sequence[str] | None) -> list[PhaseStatus]:
    if order is None:
        return list(state.phases)
    by_name = {p.name: p for p in state.phases}
    listed = [by_name[name] for name in order if name in by_name]
    seen = set(order)
    return listed + [p for p in state.phases if p.name not in seen]  # none, unless out of step


