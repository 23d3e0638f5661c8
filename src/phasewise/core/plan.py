"""Plan: what scheduling needs to know about a pipeline's graph, worked out once for it.

A pipeline never changes after construction, so its plan is made on its first run and
kept (``Pipeline`` caches it) for the next ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from phasewise.core.parameters import asked_for
from phasewise.core.phase import Phase

__all__ = ["Plan"]


class Plan:
    """The phases in execution order, their dependency counts and dependants, the phases
    ready at the start (a heap of positions in the execution order), and what each
    handler (and ``when`` condition) asks for by parameter name."""

    UPSTREAM_LIMIT = 256
    """Indirect dependencies worked out per phase at most (a context's error message
    names them; a long chain must not cost O(N²))."""

    def __init__(self, phases: Sequence[Phase], execution_order: Sequence[str]) -> None:
        by_name = {p.name: p for p in phases}
        self.phases = tuple(phases)
        self.in_order = [by_name[name] for name in execution_order]
        self.order = {p.name: i for i, p in enumerate(self.in_order)}
        self.waiting = {p.name: len(set(p.depends_on)) for p in phases}
        self.dependants: dict[str, list[str]] = {p.name: [] for p in phases}
        for p in phases:
            for dep in set(p.depends_on):
                self.dependants[dep].append(p.name)
        self.ready = sorted(self.order[p.name] for p in phases if self.waiting[p.name] == 0)
        self.executors = {p.executor for p in phases}  # None: the run's own
        by_handler: dict[int, tuple[str, ...]] = {}  # phases often share a handler
        self.asks: dict[str, tuple[str, ...]] = {}  # what each handler asks for by name
        for p in phases:
            key = id(p.handler)
            if key not in by_handler:
                by_handler[key] = p.asks
            self.asks[p.name] = by_handler[key]
        self.when_asks = {p.name: asked_for(p.when, p.name, "condition", ("context", "params"))
                          for p in phases if p.when is not None}
        self._depends_on = {p.name: p.depends_on for p in phases}
        self._upstream: dict[str, frozenset[str]] = {}

    def upstream(self, name: str) -> frozenset[str]:
        """Some of ``name``'s indirect dependencies (all of them, up to UPSTREAM_LIMIT)."""
        found = self._upstream.get(name)
        if found is None:
            direct = set(self._depends_on[name])
            seen: set[str] = set()
            queue = [d for dep in direct for d in self._depends_on[dep]]
            while queue and len(seen) < self.UPSTREAM_LIMIT:
                dep = queue.pop()
                if dep not in seen and dep not in direct:
                    seen.add(dep)
                    queue.extend(self._depends_on[dep])
            found = self._upstream[name] = frozenset(seen)
        return found
