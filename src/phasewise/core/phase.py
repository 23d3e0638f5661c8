"""Phase and PhasePolicy: one step of a pipeline, and what happens when it fails."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phasewise.core.errors import PipelineError

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
