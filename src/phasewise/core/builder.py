"""PipelineBuilder: a pipeline declared with decorators, for those who prefer it.

::

    build = PipelineBuilder("build", capture_output=True, params={"site": "docs"})

    @build.phase(label="Discover sources")
    def discover(params, workdir): ...

    @build.phase(depends_on=discover, parallel=True, executor="process", cache="24h")
    def render(context, workdir): ...

    pipeline = build.build()          # the same Pipeline the constructor form gives

``depends_on`` takes phase names or the decorated functions themselves; the decorator
returns the function unchanged, so it can still be called and tested on its own.
``build.group("checks", lint, test)`` makes decorated phases one node, as
``Pipeline.group`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from phasewise.core.errors import PipelineError
from phasewise.core.group import PhaseGroup
from phasewise.core.model import Pipeline
from phasewise.core.phase import Phase

__all__ = ["PipelineBuilder"]

Dependency = str | Callable[..., Any]


class PipelineBuilder:
    """Collects phases from ``@builder.phase(...)``; ``build()`` makes the Pipeline."""

    def __init__(self, name: str, **pipeline_options: Any) -> None:
        self.name = name
        self._options = pipeline_options
        self._phases: dict[str, Phase] = {}  # in declaration order
        self._names: dict[int, str] = {}  # id(decorated function) -> phase name
        self._functions: list[Callable[..., Any]] = []  # kept so their ids stay theirs
        self._groups: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def phase(self, fn: Callable[..., Any] | None = None, *, name: str | None = None,
              depends_on: Dependency | Iterable[Dependency] = (), **options: Any) -> Any:
        """Decorate a handler to make it a phase (named after the function unless
        ``name`` says otherwise); every other keyword is ``Phase``'s."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            phase_name = name or getattr(handler, "__name__", None)
            if not phase_name:
                raise PipelineError(f"builder {self.name!r}: give name= for {handler!r}")
            if phase_name in self._phases:
                raise PipelineError(f"builder {self.name!r} already has a phase {phase_name!r}")
            deps = tuple(self._dependency(d, phase_name) for d in _as_list(depends_on))
            self._phases[phase_name] = Phase(phase_name, handler, depends_on=deps, **options)
            self._names[id(handler)] = phase_name
            self._functions.append(handler)
            return handler

        return register(fn) if fn is not None else register

    def group(self, name: str, *members: Dependency, **options: Any) -> str:
        """Make the phases ``members`` (names or decorated functions) one node ``name``
        that runs them in parallel (see ``Pipeline.group``); returns ``name``, for
        ``depends_on``."""
        names = tuple(self._dependency(m, name) for m in members)
        self._groups[name] = (name, names, options)
        return name

    def build(self) -> Pipeline:
        grouped = {member: group for group, (_, members, _) in self._groups.items()
                   for member in members}
        items: list[Phase | PhaseGroup] = []
        placed: set[str] = set()
        for phase_name, phase in self._phases.items():
            group = grouped.get(phase_name)
            if group is None:
                items.append(phase)
            elif group not in placed:
                placed.add(group)
                _, members, options = self._groups[group]
                items.append(PhaseGroup(group, *(self._phases[m] for m in members), **options))
        return Pipeline(self.name, *items, **self._options)

    def _dependency(self, dep: Dependency, for_phase: str) -> str:
        if isinstance(dep, str):
            return dep
        found = self._names.get(id(dep))
        if found is None:
            raise PipelineError(
                f"builder {self.name!r}: {for_phase!r} depends on "
                f"{getattr(dep, '__qualname__', dep)!r}, which is not a phase of this "
                "builder (decorate it with @builder.phase first, or name a phase)")
        return found


def _as_list(deps: Dependency | Iterable[Dependency]) -> list[Dependency]:
    if isinstance(deps, str) or callable(deps):
        return [deps]
    return list(deps)
