"""Pipeline state and the reducer that advances it.

``PipelineState.phases`` is a tuple of ``PhaseStatus`` in declaration order, as the
public API promises, but the state keeps the statuses in a ``PVector`` and builds the
tuple only when someone reads ``phases``. The reducer works on the vector, so its cost
per action does not grow with the number of phases; ``state.phase(name)`` reads one
status in O(log N) without building the tuple.
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from phasewise.core import actions as A
from phasewise.core.actions import Action
from phasewise.core.pvector import PVector

__all__ = [
    "DONE_STATUSES",
    "PHASE_STATUSES",
    "PIPELINE_STATUSES",
    "PhaseLog",
    "PhaseStatus",
    "PipelineState",
    "make_reducer",
]

PHASE_STATUSES = ("pending", "running", "retrying", "completed", "failed", "skipped", "cancelled")
PIPELINE_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
DONE_STATUSES = frozenset({"completed", "skipped"})
"""Statuses that count towards ``progress`` and let dependants start."""


class PhaseLog(msgspec.Struct, frozen=True):
    """One line a phase wrote, without its newline."""

    line: str
    stream: str = "stdout"
    timestamp: float = 0.0


class PhaseStatus(msgspec.Struct, frozen=True):
    """Where one phase stands. ``traceback`` holds the handler's traceback on failure.

    PhaseLog and PhaseStatus are frozen msgspec Structs (``msgspec.structs.replace``
    copies one with changes): the reducer builds one per action, and a Struct is about
    ten times cheaper to build than a frozen dataclass.
    """

    name: str
    status: str = "pending"
    started_at: float = 0.0
    elapsed: float = 0.0
    error: str = ""
    attempt: int = 1
    logs: tuple[PhaseLog, ...] = ()
    cached: bool = False
    traceback: str = ""
    executor: str = ""
    """The name of the executor its last attempt ran on (empty until it starts)."""
    worker: str = ""
    """Where on that executor: ``pid 1234``, a dask worker's address; empty when in
    phasewise's own process or not told."""


class _PhasesField:
    """Descriptor behind ``PipelineState.phases``: stores a PVector, hands out a tuple."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, state: PipelineState | None, owner: type) -> Any:
        if state is None:
            return ()  # the dataclass default
        d = state.__dict__
        cached = d.get("_phases_tuple")
        if cached is None:
            cached = d["_vec"].to_tuple()
            d["_phases_tuple"] = cached
        return cached

    def __set__(self, state: PipelineState, value: Sequence[PhaseStatus]) -> None:
        items = tuple(value)
        d = state.__dict__
        d["_vec"] = PVector(items)
        d["_phases_tuple"] = items
        d["_index"] = {p.name: i for i, p in enumerate(items)}


@dataclass(frozen=True)
class PipelineState:
    """Observable state of one pipeline run (see DESIGN.md §3)."""

    name: str = ""
    phases: tuple[PhaseStatus, ...] = _PhasesField()  # type: ignore[assignment]
    current_phase: str = ""
    started_at: float = 0.0
    elapsed: float = 0.0
    progress: float = 0.0
    status: str = "pending"

    def phase(self, name: str) -> PhaseStatus:
        """The status of phase ``name``; ``KeyError`` if the pipeline has none."""
        d = self.__dict__
        return d["_vec"][d["_index"][name]]

    def counts(self) -> dict[str, int]:
        """How many phases are in each status (statuses with none are left out)."""
        out: dict[str, int] = {}
        for p in self.__dict__["_vec"]:
            out[p.status] = out.get(p.status, 0) + 1
        return out


_STATE_FIELDS = tuple(f.name for f in fields(PipelineState))


_new, _set_dict = object.__new__, object.__setattr__


def _evolve(state: PipelineState, changes: dict[str, Any]) -> PipelineState:
    """Copy ``state`` with ``changes`` without rebuilding the phases (O(1)); a new ``_vec``
    drops the tuple ``phases`` was built from."""
    d = state.__dict__.copy()
    if "_vec" in changes:
        d["_phases_tuple"] = None
    d.update(changes)
    new = _new(PipelineState)
    _set_dict(new, "__dict__", d)
    return new


def make_reducer(
    name: str,
    phase_names: Sequence[str],
    weights: Mapping[str, float],
    max_logs: Mapping[str, int],
) -> Callable[[PipelineState | None, Action], PipelineState]:
    """Build the pure reducer for a pipeline with these phases (see ``Pipeline.build_reducer``).

    Each action costs O(log N): one status is replaced in the vector and the state's
    other fields are copied; ``progress`` moves by the phase's own weight.

    Payloads of the phase actions (``@@PHASE_START``, ``@@PHASE_COMPLETE``,
    ``@@PHASE_FAILED``, ``@@PHASE_SKIPPED``, ``@@PHASE_RETRY``, ``@@PHASE_CANCELLED``,
    ``@@PHASE_LOG``): a dict (any Mapping) with ``"name"``, or the phase's name alone as
    a ``str``, read as ``{"name": payload}`` (milo's form). Any other payload, or a name
    that is no phase of this pipeline, raises ``ValueError`` naming the action type and
    what was wrong. Other action types never raise: ``@@INIT`` and ``@@PIPELINE_*`` read
    what they need, unknown types return the state unchanged. The common case, a dict
    with a known name, pays for none of these checks.
    """
    total_weight = float(sum(weights.values()))
    initial_vec = PVector(PhaseStatus(n) for n in phase_names)
    initial_index = {n: i for i, n in enumerate(phase_names)}
    known = tuple(phase_names)  # for error messages
    replace = msgspec.structs.replace

    def initial() -> PipelineState:
        state = object.__new__(PipelineState)
        d = state.__dict__
        for f in _STATE_FIELDS:
            if f != "phases":
                d[f] = getattr(PipelineState, f)
        d.update(name=name, _vec=initial_vec, _index=initial_index, _phases_tuple=None)
        return state

    def progress_of(vec: PVector) -> float:
        if total_weight <= 0:
            return 1.0
        done = sum(weights.get(p.name, 1) for p in vec if p.status in DONE_STATUSES)
        return done / total_weight

    index_of = initial_index.get  # the same for every state of this pipeline

    def no_such_phase(kind: str, payload: Mapping[str, Any]) -> ValueError:
        if "name" not in payload:
            return ValueError(f"{kind}: payload has no 'name' (phases of pipeline "
                              f"{name!r}: {_listing(known)}), got {_short(payload)}")
        return ValueError(f"{kind}: payload names no phase of pipeline {name!r}: "
                          f"{_short(payload['name'])} (phases: {_listing(known)})")

    def log(state: PipelineState, payload: Mapping[str, Any]) -> PipelineState:
        try:
            index = index_of(payload.get("name"))  # type: ignore[arg-type]
        except TypeError:  # an unhashable name
            index = None
        if index is None:
            raise no_such_phase(A.PHASE_LOG, payload)
        old = state.__dict__["_vec"][index]
        limit = max_logs.get(old.name, 200)
        if limit <= 0:
            return state
        entry = PhaseLog(
            str(payload.get("line", "")), payload.get("stream", "stdout"),
            payload.get("timestamp", 0.0),
        )
        logs = old.logs
        logs = (*logs[len(logs) - limit + 1 :], entry) if len(logs) >= limit else (*logs, entry)
        return _evolve(state, {"_vec": state.__dict__["_vec"].set(index, replace(old, logs=logs))})

    def phase_change(state: PipelineState, kind: str, payload: Mapping[str, Any]) -> PipelineState:
        phase = payload.get("name")
        try:
            index = index_of(phase)  # type: ignore[arg-type]
        except TypeError:  # an unhashable name
            index = None
        if index is None:
            raise no_such_phase(kind, payload)
        d = state.__dict__
        old: PhaseStatus = d["_vec"][index]
        now = payload.get("timestamp") or time.monotonic()
        if kind == A.PHASE_START:
            status = replace(old, status="running", started_at=now,
                             attempt=payload.get("attempt", 1),
                             executor=payload.get("executor", old.executor),
                             worker=payload.get("worker", ""))
        elif kind == A.PHASE_COMPLETE:
            status = replace(
                old, status="completed", error="",  # an earlier attempt's error is gone
                cached=bool(payload.get("cached", False)),
                elapsed=(now - old.started_at) if old.started_at and old.status in
                ("running", "retrying") else old.elapsed,
            )
        elif kind == A.PHASE_RETRY:
            status = replace(old, status="retrying", error=str(payload.get("error", "")),
                             attempt=payload.get("attempt", old.attempt))
        else:
            changes: dict[str, Any] = {"status": _ENDINGS[kind]}
            if old.started_at and old.status in ("running", "retrying"):
                changes["elapsed"] = now - old.started_at
            if kind == A.PHASE_CANCELLED:
                changes["error"] = str(payload.get("reason", payload.get("error", "")))
            else:
                changes["error"] = str(payload.get("error", ""))
                if "traceback" in payload:
                    changes["traceback"] = str(payload["traceback"])
            status = replace(old, **changes)
        started_at = d["started_at"]
        fields = {"_vec": d["_vec"].set(index, status),
                  "elapsed": (now - started_at) if started_at else d["elapsed"]}
        if kind == A.PHASE_START:
            fields["current_phase"] = phase
        elif kind == A.PHASE_FAILED:
            fields["status"] = "failed"
            fields["current_phase"] = phase
        # START / RETRY of a completed or skipped phase takes its weight back out
        was, done = old.status in DONE_STATUSES, status.status in DONE_STATUSES
        if was != done and total_weight > 0:
            delta = weights.get(phase, 1) / total_weight  # type: ignore[arg-type]
            progress = d["progress"] + (delta if done else -delta)
            fields["progress"] = min(1.0, max(0.0, progress))
        return _evolve(state, fields)

    def reducer(state: PipelineState | None, action: Action) -> PipelineState:
        kind = action.type
        if state is None or kind == A.INIT:
            state = initial()
            if kind == A.INIT:
                return state
        payload = action.payload
        if type(payload) is not dict:
            payload = _as_mapping(kind, payload)
        if kind in _PHASE_CHANGES:  # the common case first
            return phase_change(state, kind, payload)
        if kind == A.PHASE_LOG:
            return log(state, payload)
        if kind == A.PIPELINE_START:
            started = action.payload if isinstance(action.payload, (int, float)) else None
            return _evolve(state, {"status": "running",
                                   "started_at": started or time.monotonic()})
        if kind == A.PIPELINE_COMPLETE:
            now = payload.get("timestamp") or time.monotonic()
            status = payload.get("status")
            if status is None:
                status = state.status if state.status in ("failed", "cancelled") else "completed"
            elapsed = now - state.started_at if state.started_at else state.elapsed
            return _evolve(state, {"status": status, "elapsed": elapsed, "current_phase": "",
                                   "progress": progress_of(state.__dict__["_vec"])})
        return state

    return reducer


_ENDINGS = {
    A.PHASE_COMPLETE: "completed",
    A.PHASE_FAILED: "failed",
    A.PHASE_SKIPPED: "skipped",
    A.PHASE_CANCELLED: "cancelled",
}
_PHASE_CHANGES = frozenset({A.PHASE_START, A.PHASE_RETRY, *_ENDINGS})
_PHASE_ACTIONS = _PHASE_CHANGES | {A.PHASE_LOG}


def _as_mapping(kind: str, payload: Any) -> Mapping[str, Any]:
    """The payload of an action whose payload is not a plain dict, as a Mapping: a phase
    action's bare name means ``{"name": payload}``; other action types read nothing from
    a payload that is not a Mapping."""
    if isinstance(payload, Mapping):
        return payload
    if kind not in _PHASE_ACTIONS:
        return {}
    if isinstance(payload, str):
        return {"name": payload}
    raise ValueError(f"{kind}: payload must be a phase name or a dict with 'name', "
                     f"got {_short(payload)} ({type(payload).__name__})")


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _short(value: Any) -> str:
    """``repr(value)``, cut short: a payload can carry a phase's whole result."""
    return _REPR.repr(value)


def _listing(names: Sequence[str], limit: int = 10) -> str:
    """``a, b, c``; past ``limit`` names, the first ones and how many there are."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])}, … ({len(names)} in all)"

