"""PhaseContext: what a handler's ``context`` parameter gets.

A read-only mapping of the phase's direct dependencies to their results (``None`` for
a skipped one). Asking it for anything else raises ``MissingDependency``, a
``KeyError`` that says which phase asked, what its context holds, and what to change,
instead of a bare ``KeyError: 'hash_all'`` from deep inside the handler.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MissingDependency", "MissingParam", "PhaseContext", "RunParams"]


class MissingDependency(KeyError):
    """``context[name]`` for a ``name`` that is not a direct dependency of ``phase``."""

    def __init__(self, phase: str, name: object, available: tuple[str, ...],
                 indirect: bool = False) -> None:
        super().__init__(name)
        self.phase, self.name, self.available, self.indirect = phase, name, available, indirect

    def __str__(self) -> str:
        holds = ", ".join(self.available) if self.available else "nothing"
        message = (f"phase {self.phase!r} has no dependency {self.name!r}; its context "
                   f"holds: {holds}; add {self.name!r} to depends_on")
        if self.indirect:
            message += (f" ({self.name!r} runs before it only as a dependency of its "
                        "dependencies, and context holds direct dependencies alone)")
        return message

    def __reduce__(self) -> Any:
        return MissingDependency, (self.phase, self.name, self.available, self.indirect)


class PhaseContext(Mapping[str, Any]):
    """The results of ``phase``'s direct dependencies, read-only.

    ``upstream`` names the phase's indirect dependencies (as far as they were worked
    out), so that a miss on one of them can say so.
    """

    __slots__ = ("_phase", "_results", "_upstream")

    def __init__(self, phase: str, results: Mapping[str, Any],
                 upstream: frozenset[str] = frozenset()) -> None:
        self._phase = phase
        self._results = dict(results)
        self._upstream = upstream

    def __getitem__(self, name: str) -> Any:
        try:
            return self._results[name]
        except KeyError:
            raise MissingDependency(self._phase, name, tuple(self._results),
                                    name in self._upstream) from None

    def __contains__(self, name: object) -> bool:
        return name in self._results

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        return f"PhaseContext({self._phase!r}, {self._results!r})"

    def __reduce__(self) -> Any:
        return PhaseContext, (self._phase, self._results, self._upstream)


class MissingParam(KeyError):
    """``params[name]`` for a parameter the run does not have."""

    def __init__(self, name: object, available: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name, self.available = name, available

    def __str__(self) -> str:
        known = ", ".join(self.available) if self.available else "none"
        return (f"the run has no parameter {self.name!r} (its params: {known}); pass "
                f"--param {self.name}=VALUE, or give it a default in Pipeline(params=...)")

    def __reduce__(self) -> Any:
        return MissingParam, (self.name, self.available)


class RunParams(Mapping[str, Any]):
    """The run's parameters, read-only: what a handler's ``params`` parameter gets."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise MissingParam(name, tuple(self._values)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RunParams({self._values!r})"

    def __reduce__(self) -> Any:
        return RunParams, (self._values,)
