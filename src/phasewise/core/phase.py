"""Phase and PhasePolicy: one step of a pipeline, and what happens when it fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phasewise.core.errors import PipelineError
from phasewise.core.parameters import asked_for

__all__ = ["MAX_RETRY_DELAY", "Phase", "PhasePolicy", "parse_ttl"]

_TTL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_ttl(value: object) -> float | None:
    """Seconds a cached result stays good: ``True`` → None (forever), ``"500ms"``, ``"90s"``,
    ``"10m"``, ``"24h"``, ``"7d"`` → that many seconds. ``ValueError`` for anything else
    (``False``, caching off, is the caller's to handle)."""
    if value is True:
        return None
    if isinstance(value, str):
        text = value.strip()
        for unit in ("ms", "s", "m", "h", "d"):  # "ms" before "m" and "s"
            number = text[: -len(unit)]
            if text.endswith(unit) and number.replace(".", "", 1).isdigit():
                seconds = float(number) * _TTL_UNITS[unit]
                if seconds > 0:
                    return seconds
    raise ValueError(f"cache must be False, True or a duration like '500ms', '90s', '10m', "
                     f"'24h' or '7d', got {value!r}")

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
    overrides the run's executor for this phase; ``timeout`` is in seconds. ``cache``
    (``True`` or a time to live such as ``"24h"``) lets a run with a work directory reuse
    the result of an earlier run whose handler code and inputs were the same. ``max_logs`` is
    how many captured lines the Store keeps (the newest).

    The handler asks for what it needs by parameter name (``context``, ``params``,
    ``workdir``; see ``core.parameters``). The rest is off unless given: ``label`` (the
    text progress shows; the name by default), ``when`` (a predicate, its parameters filled
    the same way: false skips the phase with "condition not met"), ``validate`` (called
    with the result: raises to fail the phase, or returns warnings), ``review`` (a message
    to pause on after the phase, ``{workdir}`` filled in), ``on_success(result)`` and
    ``on_failure(error)`` hooks, ``error`` (the exception type its failure is raised as)
    and ``resources`` (what it needs of a cluster worker, e.g. ``{"GPU": 1}`` or
    ``{"memory": 8e9}``: names to numbers >= 0, which the dask executor passes to
    ``client.submit(resources=...)``, so that the phase runs only on a worker started with
    them; every other executor ignores them).
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
    cache: bool | str = False
    label: str = ""
    when: Callable[..., Any] | None = None
    validate: Callable[[Any], Any] | None = None
    review: str = ""
    on_success: Callable[[Any], Any] | None = None
    on_failure: Callable[[BaseException], Any] | None = None
    error: type[BaseException] | None = None
    resources: Mapping[str, float] | None = None

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
        if self.cache is not False:
            try:
                parse_ttl(self.cache)
            except ValueError as exc:
                raise PipelineError(f"phase {self.name!r}: {exc}") from None
        if self.parallel is not None and not isinstance(self.parallel, bool):
            raise PipelineError(f"phase {self.name!r}: parallel must be True, False or None")
        if not isinstance(self.label, str):
            raise PipelineError(f"phase {self.name!r}: label must be a string")
        object.__setattr__(self, "label", self.label or self.name)
        for hook in ("when", "validate", "on_success", "on_failure"):
            if getattr(self, hook) is not None and not callable(getattr(self, hook)):
                raise PipelineError(f"phase {self.name!r}: {hook} must be callable")
        if self.error is not None and not (
                isinstance(self.error, type) and issubclass(self.error, BaseException)):
            raise PipelineError(f"phase {self.name!r}: error must be an exception class, "
                                f"got {self.error!r}")
        if not isinstance(self.review, str):
            raise PipelineError(f"phase {self.name!r}: review must be a string")
        asked_for(self.handler, self.name)  # a parameter phasewise cannot fill fails here
        if self.when is not None:
            asked_for(self.when, self.name, "condition", ("context", "params"))
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
        if self.resources is not None:
            object.__setattr__(self, "resources", _resources(self.name, self.resources))

    @property
    def asks(self) -> tuple[str, ...]:
        """What the handler asks for by parameter name: ``context``, ``params``,
        ``workdir``, in that order (see ``core.parameters``)."""
        return asked_for(self.handler, self.name)

    @property
    def wants_context(self) -> bool:
        """Whether the handler has a parameter named ``context``."""
        return "context" in self.asks


def _resources(phase: str, resources: object) -> dict[str, float]:
    """``Phase.resources`` checked: a mapping of names to numbers >= 0, copied."""
    if not isinstance(resources, Mapping):
        raise PipelineError(f"phase {phase!r}: resources must be a mapping of names to "
                            f"numbers, such as {{'GPU': 1}}, got {resources!r}")
    checked: dict[str, float] = {}
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise PipelineError(f"phase {phase!r}: a resource name must be a non-empty "
                                f"string, got {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not (
                amount >= 0):
            raise PipelineError(f"phase {phase!r}: resource {name!r} must be a number >= 0, "
                                f"got {amount!r}")
        checked[name] = amount
    return checked
