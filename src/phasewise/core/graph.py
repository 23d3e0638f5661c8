"""Validation and ordering of a dependency graph given as ``{name: dependencies}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from phasewise.core.errors import CycleError, PipelineError

__all__ = ["find_cycle", "levels", "validate"]


def validate(names: Sequence[str], deps: Mapping[str, Sequence[str]]) -> None:
    """Raise ``PipelineError`` for duplicates or unknown dependencies, ``CycleError`` for cycles."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PipelineError(f"duplicate phase name {name!r}: phase names must be unique")
        seen.add(name)
    for name in names:
        missing = [d for d in deps.get(name, ()) if d not in seen]
        if missing:
            verb = "does" if len(missing) == 1 else "do"
            raise PipelineError(
                f"Phase {name!r} depends on {missing} which {verb} not exist. "
                f"Available phases: {sorted(seen)}"
            )
    cycle = find_cycle(names, deps)
    if cycle:
        raise CycleError(cycle)


def find_cycle(names: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path ``[a, b, ..., a]`` following dependency edges, or None.

    Iterative depth-first search, so a 10,000-phase chain does not hit the recursion limit.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(names, white)
    for start in names:
        if colour[start] != white:
            continue
        colour[start] = grey
        path = [start]
        stack = [iter(deps.get(start, ()))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = black
                stack.pop()
            elif colour.get(child) == grey:
                return [*path[path.index(child) :], child]
            elif colour.get(child) == white:
                colour[child] = grey
                path.append(child)
                stack.append(iter(deps.get(child, ())))
    return None


def levels(names: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Kahn's algorithm by levels: each level's phases depend only on earlier levels.

    Names are sorted within a level. Assumes ``validate`` passed.
    """
    waiting = {n: len(set(deps.get(n, ()))) for n in names}
    dependants: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in set(deps.get(n, ())):
            dependants[d].append(n)
    level = sorted(n for n, count in waiting.items() if count == 0)
    out: list[list[str]] = []
    while level:
        out.append(level)
        nxt: list[str] = []
        for n in level:
            for m in dependants[n]:
                waiting[m] -= 1
                if waiting[m] == 0:
                    nxt.append(m)
        level = sorted(nxt)
    return out
