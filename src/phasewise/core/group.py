"""PhaseGroup: phases that run in parallel and that others depend on as one node.

``Pipeline.group("checks", lint, test)`` (or a list of phases in the builder) stands, in a
pipeline, for its members — made parallel unless they say otherwise — and one more phase
named after the group that depends on all of them and returns ``{member: result}``.
``depends_on="checks"`` then waits for every member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from phasewise.core.errors import PipelineError
from phasewise.core.phase import Phase

__all__ = ["PhaseGroup", "gather"]


def gather(context: Mapping[str, Any]) -> dict[str, Any]:
    """A group's own phase: the results of its members, by name."""
    return dict(context)


class PhaseGroup:
    """``name`` and its member phases; ``phases()`` is what a pipeline holds for it."""

    def __init__(self, name: str, *members: Phase, label: str = "",
                 depends_on: tuple[str, ...] | str = ()) -> None:
        if not members:
            raise PipelineError(f"group {name!r} has no phases")
        for member in members:
            if not isinstance(member, Phase):
                raise PipelineError(f"group {name!r}: expected Phase objects, got {member!r}")
        self.name = name
        self.label = label or name
        extra = (depends_on,) if isinstance(depends_on, str) else tuple(depends_on)
        self.members = tuple(
            dataclasses.replace(m, parallel=True if m.parallel is None else m.parallel,
                                depends_on=tuple(dict.fromkeys((*m.depends_on, *extra))))
            for m in members)

    def phases(self) -> tuple[Phase, ...]:
        join = Phase(self.name, gather, label=self.label, parallel=True, weight=0,
                     depends_on=tuple(m.name for m in self.members),
                     description=f"group of {', '.join(m.name for m in self.members)}")
        return (*self.members, join)
