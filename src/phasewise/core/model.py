"""Phase, PhasePolicy, Pipeline and PipelineResult: what a user declares and gets back."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phasewise.core import graph
from phasewise.core.errors import PipelineError, PipelineFailed
from phasewise.core.state import PipelineState, make_reducer

if TYPE_CHECKING:
    from phasewise.core.actions import Action
    from phasewise.core.executor import ExecutorLookup
    from phasewise.core.store import Store

__all__ = ["Phase", "PhasePolicy", "Pipeline", "PipelineResult"]

_ON_FAIL = ("stop", "skip", "retry")
_BACKOFF = ("fixed", "exponential")
MAX_RETRY_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class PhasePolicy:
    """What happens when a phase's handler raises.

    ``stop`` fails the pipeline; ``skip`` marks the phase skipped and lets dependants
    run (their context gets None for it); ``retry`` tries again up to ``max_retries``
    times, ``retry_delay`` seconds apart (``exponential``: delay·2^(attempt-1), at most
    30 s), then fails as ``stop``.
    """

    on_fail: str = "stop"
    max_retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: str = "fixed"

    def __post_init__(self) -> None:
        if self.on_fail not in _ON_FAIL:
            raise ValueError(f"on_fail must be one of {list(_ON_FAIL)}, got {self.on_fail!r}")
        if self.retry_backoff not in _BACKOFF:
            raise ValueError(
                f"retry_backoff must be one of {list(_BACKOFF)}, got {self.retry_backoff!r}"
            )
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        if not isinstance(self.retry_delay, (int, float)) or self.retry_delay < 0:
            raise ValueError(f"retry_delay must be a number >= 0, got {self.retry_delay!r}")

    @property
    def attempts(self) -> int:
        """How many times the handler may run in all."""
        return self.max_retries + 1 if self.on_fail == "retry" else 1

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.retry_backoff == "exponential":
            return min(self.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
        return float(self.retry_delay)


@dataclass(frozen=True, slots=True)
class Phase:
    """A named step of a pipeline.

    ``parallel=True`` phases run alongside each other (up to ``max_workers``); a
    ``parallel=False`` phase runs alone. Left out (None), a phase takes its pipeline's
    ``parallel``, which is False unless the pipeline says otherwise. ``executor``
    overrides the run's executor for this phase; ``timeout`` is in seconds. ``max_logs`` is
    how many captured lines the Store keeps (the newest).
    """

    name: str
    handler: Callable[..., Any]
    description: str = ""
    depends_on: tuple[str, ...] = ()
    parallel: bool | None = None
    weight: float = 1
    policy: PhasePolicy = field(default_factory=PhasePolicy)
    max_logs: int = 200
    executor: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PipelineError(f"a phase name must be a non-empty string, got {self.name!r}")
        if not callable(self.handler):
            raise PipelineError(
                f"phase {self.name!r}: handler must be callable, got {self.handler!r}"
            )
        deps = self.depends_on
        if isinstance(deps, str):
            deps = (deps,)
        object.__setattr__(self, "depends_on", tuple(deps))
        if self.parallel is not None and not isinstance(self.parallel, bool):
            raise PipelineError(f"phase {self.name!r}: parallel must be True, False or None")
        if not isinstance(self.policy, PhasePolicy):
            raise PipelineError(f"phase {self.name!r}: policy must be a PhasePolicy")
        if not isinstance(self.weight, (int, float)) or self.weight < 0:
            raise PipelineError(f"phase {self.name!r}: weight must be a number >= 0")
        if not isinstance(self.max_logs, int) or self.max_logs < 0:
            raise PipelineError(f"phase {self.name!r}: max_logs must be a whole number >= 0")
        if self.timeout is not None and (
            not isinstance(self.timeout, (int, float)) or self.timeout <= 0
        ):
            raise PipelineError(f"phase {self.name!r}: timeout must be a number of seconds > 0")

    @property
    def wants_context(self) -> bool:
        """Whether the handler has a parameter named ``context``."""
        return _takes_context(self.handler)


def _takes_context(handler: Callable[..., Any]) -> bool:
    code = getattr(handler, "__code__", None)
    if code is not None and not hasattr(handler, "__wrapped__"):
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if inspect.ismethod(handler):
            names = names[1:]
        return "context" in names
    try:
        return "context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


class Pipeline:
    """Named phases with dependencies. Validated on construction; immutable after it.

    ``parallel=True`` makes every phase that does not say otherwise (``Phase(parallel=
    None)``, the default) a parallel one; the pipeline's ``phases`` hold each phase with
    ``parallel`` settled to True or False. ``pipeline >> Phase(...)`` returns a new
    pipeline with the phase added.
    """

    def __init__(
        self,
        name: str,
        *phases: Phase,
        capture_output: bool = False,
        fail_fast: bool = False,
        parallel: bool = False,
    ) -> None:
        if not isinstance(name, str):
            raise PipelineError(
                f"Pipeline(name, *phases): the name must be a string, got {name!r}; "
                "pass the phases after it, e.g. Pipeline('build', *phases)"
            )
        for p in phases:
            if not isinstance(p, Phase):
                raise PipelineError(f"pipeline {name!r}: expected Phase objects, got {p!r}")
        self.name = name
        self.parallel = bool(parallel)
        self.phases: tuple[Phase, ...] = tuple(
            dataclasses.replace(p, parallel=self.parallel) if p.parallel is None else p
            for p in phases)
        self.capture_output = capture_output
        self.fail_fast = fail_fast
        graph.validate([p.name for p in phases], {p.name: p.depends_on for p in phases})
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
            parallel=self.parallel,
        )

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
        from phasewise.core.scheduler import PipelineRun

        def saga() -> Any:
            run = PipelineRun(
                self,
                executor=executor,
                max_workers=max_workers,
                executor_options=executor_options,
                executors=executors,
                capture_output=self.capture_output if capture_output is None else capture_output,
                fail_fast=self.fail_fast if fail_fast is None else fail_fast,
                results=results,
            )
            return (yield from run.saga())

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
    ) -> PipelineResult:
        """Run the pipeline to the end in this thread and return its result.

        A failed phase does not raise: look at ``result.ok`` or call
        ``result.raise_for_status()``. Ctrl-C cancels the run (running phases end
        ``cancelled``, workers are stopped) and re-raises KeyboardInterrupt; pass
        ``results`` (a dict) to keep the results of the phases that completed before it.
        An executor that refuses ``executor_options`` raises ``ExecutorOptionsError``
        before any phase starts.
        """
        from phasewise.core import runtime
        from phasewise.core.store import Store as StoreClass

        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        lookup = executors or runtime.lookup_executor
        for name in {executor, *(p.executor for p in self.phases if p.executor)}:
            lookup(name)  # unknown executors fail before anything runs
        store = store if store is not None else StoreClass(self.build_reducer())
        results = results if results is not None else {}
        saga = self.build_saga(
            executor, max_workers, executor_options, executors=lookup,
            capture_output=capture_output, fail_fast=fail_fast, results=results,
        )
        store.run_saga(saga)
        return PipelineResult.from_state(store.state, results)


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """The outcome of ``Pipeline.run``: final status and state, results by phase."""

    status: str
    state: PipelineState
    results: dict[str, Any]
    ok: bool
    counts: dict[str, int]

    @classmethod
    def from_state(cls, state: PipelineState, results: dict[str, Any]) -> PipelineResult:
        return cls(state.status, state, dict(results), state.status == "completed", state.counts())

    def raise_for_status(self) -> PipelineResult:
        """Raise ``PipelineFailed`` unless the pipeline completed; returns self if it did."""
        if self.ok:
            return self
        failures = {
            p.name: p.error for p in self.state.phases if p.status in ("failed", "cancelled")
        }
        raise PipelineFailed(self.state.name, self.status, failures)
