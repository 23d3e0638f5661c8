"""Pipeline and PipelineResult: what a user declares and gets back (``Phase`` and
``PhasePolicy``, from ``phasewise.core.phase``, are re-exported here)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasewise.core import graph
from phasewise.core.context import RunParams
from phasewise.core.errors import PipelineError, PipelineFailed
from phasewise.core.group import PhaseGroup
from phasewise.core.phase import Phase, PhasePolicy
from phasewise.core.plan import Plan
from phasewise.core.scheduler import PipelineRun, RunOptions
from phasewise.core.state import PipelineState, make_reducer

if TYPE_CHECKING:
    from phasewise.core.actions import Action
    from phasewise.core.executor import ExecutorLookup
    from phasewise.core.store import Store

__all__ = ["Phase", "PhasePolicy", "Pipeline", "PipelineResult"]

class Pipeline:
    """Named phases with dependencies. Validated on construction; immutable after it.

    ``parallel=True`` makes every phase that does not say otherwise (``Phase(parallel=
    None)``, the default) a parallel one; the pipeline's ``phases`` hold each phase with
    ``parallel`` settled to True or False. ``params`` are the defaults of the run's
    parameters (a run may then set only these). A ``Pipeline.group(...)`` among the
    phases stands for its members and its own phase. ``pipeline >> Phase(...)`` returns
    a new pipeline with the phase added.
    """

    def __init__(
        self,
        name: str,
        *phases: Phase | PhaseGroup,
        capture_output: bool = False,
        fail_fast: bool = False,
        parallel: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise PipelineError(
                f"Pipeline(name, *phases): the name must be a string, got {name!r}; "
                "pass the phases after it, e.g. Pipeline('build', *phases)"
            )
        flat: list[Phase] = []
        for p in phases:
            if isinstance(p, PhaseGroup):
                flat += p.phases()
            elif isinstance(p, Phase):
                flat.append(p)
            else:
                raise PipelineError(f"pipeline {name!r}: expected Phase objects, got {p!r}")
        if params is not None and not isinstance(params, Mapping):
            raise PipelineError(f"pipeline {name!r}: params must be a mapping of defaults")
        self.params: dict[str, Any] | None = dict(params) if params is not None else None
        self.name = name
        self.parallel = bool(parallel)
        self.phases: tuple[Phase, ...] = tuple(
            dataclasses.replace(p, parallel=self.parallel) if p.parallel is None else p
            for p in flat)
        self.capture_output = capture_output
        self.fail_fast = fail_fast
        graph.validate([p.name for p in flat], {p.name: p.depends_on for p in flat})
        self._by_name = {p.name: p for p in self.phases}
        self._derived: dict[str, Any] = {}

    def __rshift__(self, phase: Phase) -> Pipeline:
        if isinstance(phase, Phase):
            more: Iterable[Phase] = (phase,)
        elif isinstance(phase, Pipeline):
            more = phase.phases
        else:
            return NotImplemented
        return Pipeline(
            self.name, *self.phases, *more,
            capture_output=self.capture_output, fail_fast=self.fail_fast,
            parallel=self.parallel, params=self.params,
        )

    @staticmethod
    def group(name: str, *phases: Phase, label: str = "",
              depends_on: tuple[str, ...] | str = ()) -> PhaseGroup:
        """Phases that run in parallel, as one node named ``name`` that others can depend
        on (see ``core.group``); ``depends_on`` is added to every member's."""
        return PhaseGroup(name, *phases, label=label, depends_on=depends_on)

    def run_params(self, given: Mapping[str, Any] | None) -> RunParams:
        """The defaults updated with ``given``; ``ValueError`` naming the known ones for a
        name the defaults do not have (when the pipeline declares defaults)."""
        given = dict(given or {})
        if self.params is not None:
            unknown = sorted(set(given) - set(self.params))
            if unknown:
                known = ", ".join(sorted(self.params)) or "none"
                raise ValueError(f"pipeline {self.name!r} has no parameter {unknown[0]!r} "
                                 f"(its parameters: {known})")
        return RunParams({**(self.params or {}), **given})

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {len(self.phases)} phases)"

    def __len__(self) -> int:
        return len(self.phases)

    def phase(self, name: str) -> Phase:
        return self._by_name[name]

    def levels(self) -> list[list[str]]:
        """Phase names level by level (a level depends only on earlier ones), sorted within."""
        deps = {p.name: p.depends_on for p in self.phases}
        return graph.levels([p.name for p in self.phases], deps)

    def execution_order(self) -> list[str]:
        """Phase names level by level, sorted within a level."""
        order = self._cached("order", lambda: tuple(n for level in self.levels() for n in level))
        return list(order)

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, worked out once per pipeline and kept under ``key``.

        A pipeline never changes after construction, so what runs derive from it (the
        execution order, the reducer, the scheduler's dependency counts) is computed on
        the first run and reused by the next ones.
        """
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = compute()
            return value

    def build_reducer(self) -> Callable[[PipelineState | None, Action], PipelineState]:
        """A pure ``reducer(state, action) -> PipelineState`` for this pipeline (the same
        function every time: it keeps no state of its own).

        A phase action (``@@PHASE_START``, ``@@PHASE_COMPLETE``, ``@@PHASE_FAILED``,
        ``@@PHASE_SKIPPED``, ``@@PHASE_RETRY``, ``@@PHASE_CANCELLED``, ``@@PHASE_LOG``)
        carries a dict with ``"name"`` or, as in milo, the phase's name alone:
        ``Action(PHASE_START, "discover")`` is ``Action(PHASE_START, {"name": "discover"})``.
        Any other payload, or a name that is no phase of this pipeline, raises
        ``ValueError`` naming the action type and what was wrong, rather than being
        dropped. ``@@INIT``, ``@@PIPELINE_*`` and action types the reducer does not know
        take any payload; unknown types leave the state as it is.
        """
        return self._cached("reducer", lambda: make_reducer(
            self.name,
            [p.name for p in self.phases],
            {p.name: p.weight for p in self.phases},
            {p.name: p.max_logs for p in self.phases},
        ))

    def build_saga(
        self,
        executor: str = "thread",
        max_workers: int | None = None,
        executor_options: Mapping[str, Any] | None = None,
        *,
        executors: ExecutorLookup | None = None,
        capture_output: bool | None = None,
        fail_fast: bool | None = None,
        results: dict[str, Any] | None = None,
    ) -> Callable[[], Any]:
        """A generator function that runs this pipeline when a Store runs it as a saga.

        The saga returns ``{phase: result}``; pass ``results`` to have it filled in as
        phases complete (useful if the run is interrupted).
        """
        options = self._options(executor, max_workers, executor_options, executors,
                                capture_output, fail_fast)

        def saga() -> Any:
            return (yield from PipelineRun(self._plan(), options, results).saga())

        return saga

    def run(
        self,
        executor: str = "thread",
        max_workers: int | None = None,
        store: Store | None = None,
        executor_options: Mapping[str, Any] | None = None,
        *,
        capture_output: bool | None = None,
        fail_fast: bool | None = None,
        executors: ExecutorLookup | None = None,
        results: dict[str, Any] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        cache: bool = True,
        params: Mapping[str, Any] | None = None,
        review: Callable[[str, str, Path | None], bool] | None = None,
        pause_after: Iterable[str] = (),
    ) -> PipelineResult:
        """Run the pipeline to the end in this thread and return its result.

        A failed phase does not raise: look at ``result.ok`` or call
        ``result.raise_for_status()``. Ctrl-C cancels the run (running phases end
        ``cancelled``, workers are stopped) and re-raises KeyboardInterrupt; pass
        ``results`` (a dict) to keep the results of the phases that completed before it.
        An executor that refuses ``executor_options`` raises ``ExecutorOptionsError``
        before any phase starts; one that cannot work at all, ``ExecutorError``.

        With a ``workdir``, the run is kept there as it goes (its state, a journal of
        every transition, the results of completed phases), ``resume=True`` runs only
        what did not complete in the last run kept there, and phases with
        ``Phase(cache=...)`` reuse earlier results for the same inputs unless
        ``cache=False``. Without one, nothing is kept and nothing is cached, and a
        phase asking for ``workdir`` gets a temporary folder kept until the run ends.

        ``params`` (over the pipeline's defaults) go to handlers asking for ``params``.
        ``review(phase, message, folder)`` is called after each phase with
        ``Phase(review=...)`` or named in ``pause_after``; returning False stops the run
        there (it ends ``cancelled``, and can be resumed).
        """
        from phasewise.core import services
        from phasewise.core.store import Store as StoreClass

        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        if resume and workdir is None:
            raise ValueError("resume=True needs the workdir of the run to resume")
        lookup = executors or services.lookup_executor
        for name in {executor, *(p.executor for p in self.phases if p.executor)}:
            lookup(name)  # unknown executors fail before anything runs
        store = store if store is not None else StoreClass(self.build_reducer())
        results = results if results is not None else {}
        unknown = sorted(set(pause_after) - set(self._by_name))
        if unknown:
            raise ValueError(f"pause_after names no phase of {self.name!r}: {unknown[0]!r}")
        run_params = self.run_params(params)
        options = dataclasses.replace(
            self._options(executor, max_workers, executor_options, lookup, capture_output,
                          fail_fast),
            params=run_params, review=review, pause_after=frozenset(pause_after))
        ended = services.observe_run(self, store, executor)
        runs: list[PipelineRun] = []  # the run, once made: its errors, whatever happens
        try:
            if workdir is None:
                runs.append(PipelineRun(self._plan(), options, results))
                store.run_saga(runs[0].saga)
            else:
                self._run_in(workdir, store, options, results, runs, resume=resume,
                             cache=cache, params=run_params)
        except BaseException as exc:
            if ended is not None:
                ended(PipelineResult.from_state(
                    store.state, results, runs[0].errors if runs else None,
                    interrupted=isinstance(exc, KeyboardInterrupt)), exc)
            raise
        result = PipelineResult.from_state(store.state, results, runs[0].errors)
        if ended is not None:
            ended(result, None)
        return result

    def _run_in(self, workdir: str | os.PathLike[str], store: Store, options: RunOptions,
                results: dict[str, Any], runs: list[PipelineRun], *, resume: bool,
                cache: bool, params: RunParams) -> None:
        """Run with the run kept in ``workdir`` (see ``run``); the run is appended to
        ``runs`` as soon as it is made."""
        from phasewise.core import services

        record = services.open_workdir(self, workdir, resume=resume, cache=cache,
                                       params=params)
        try:
            record.attach(store)
            runs.append(PipelineRun(self._plan(), dataclasses.replace(
                options, completed=record.completed, cache=record.cache,
                folders=record.folders, keeps_results=True), results))
            store.run_saga(runs[0].saga)
        finally:
            record.close(store.state)

    def _options(
        self, executor: str, max_workers: int | None,
        executor_options: Mapping[str, Any] | None, executors: ExecutorLookup | None,
        capture_output: bool | None, fail_fast: bool | None,
    ) -> RunOptions:
        return RunOptions(
            executor=executor, max_workers=max_workers,
            executor_options=dict(executor_options or {}), executors=executors,
            capture_output=self.capture_output if capture_output is None else capture_output,
            fail_fast=self.fail_fast if fail_fast is None else fail_fast,
        )

    def _plan(self) -> Plan:
        return self._cached("plan", lambda: Plan(self.phases, self.execution_order()))


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """The outcome of ``Pipeline.run``: final status and state, results by phase."""

    status: str
    state: PipelineState
    results: dict[str, Any]
    ok: bool
    counts: dict[str, int]
    errors: dict[str, BaseException] = field(default_factory=dict)
    """Failures of phases with ``Phase(error=...)``, as that type (the original as cause)."""
    interrupted: bool = False
    """Ctrl-C stopped the run (its status is then ``cancelled``)."""

    @classmethod
    def from_state(cls, state: PipelineState, results: dict[str, Any],
                   errors: Mapping[str, BaseException] | None = None, *,
                   interrupted: bool = False) -> PipelineResult:
        return cls(state.status, state, dict(results), state.status == "completed",
                   state.counts(), dict(errors or {}), interrupted)

    def raise_for_status(self) -> PipelineResult:
        """Raise unless the pipeline completed (returns self if it did): the error of the
        first failed phase with ``Phase(error=...)``, as that type, else
        ``PipelineFailed``."""
        if self.ok:
            return self
        for p in self.state.phases:
            if p.status == "failed" and p.name in self.errors:
                raise self.errors[p.name]
        failures = {
            p.name: p.error for p in self.state.phases if p.status in ("failed", "cancelled")
        }
        raise PipelineFailed(self.state.name, self.status, failures)
