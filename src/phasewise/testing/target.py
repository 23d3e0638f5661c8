"""ExecutorUnderTest: the executor the conformance suite runs its pipelines on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phasewise.core.executor import ExecutorFactory
    from phasewise.core.model import Pipeline, PipelineResult

__all__ = ["ExecutorUnderTest"]


@dataclass(frozen=True)
class ExecutorUnderTest:
    """An executor for the conformance suite: a ``name``, and how to make it.

    ``factory`` (what ``phasewise_executors()`` would return for ``name``) makes it
    without registering a plugin; None looks ``name`` up among the installed plugins.
    Every other executor a test names (``inline``, for a phase that overrides the run's
    executor) comes from the installed plugins. ``options`` are the run's
    ``executor_options``. ``runs_inside_submit``: the executor runs each task inside
    ``submit()``, one at a time, as ``InlineExecutor`` does; the tests that need two
    phases running at once are skipped. None: True for phasewise's own ``inline`` only.
    """

    name: str
    factory: ExecutorFactory | None = None
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    runs_inside_submit: bool | None = None

    @classmethod
    def of(cls, executor: str | ExecutorUnderTest) -> ExecutorUnderTest:
        """``executor`` itself, or the installed executor it names."""
        return executor if isinstance(executor, ExecutorUnderTest) else cls(executor)

    @property
    def one_at_a_time(self) -> bool:
        """Whether it runs each task inside ``submit()``, in the caller's thread."""
        if self.runs_inside_submit is None:
            return self.name == "inline" and self.factory is None
        return self.runs_inside_submit

    def lookup(self, name: str) -> ExecutorFactory:
        """The factory of executor ``name``: this one's, or an installed plugin's."""
        if self.factory is not None and name == self.name:
            return self.factory
        from phasewise.plugins.manager import lookup_executor

        return lookup_executor(name)

    def run(self, pipeline: Pipeline, **options: Any) -> PipelineResult:
        """``pipeline.run(**options)`` on this executor (unless ``executor=`` names
        another), its factory found by ``lookup``."""
        options.setdefault("executor", self.name)
        if self.options and options["executor"] == self.name:
            options.setdefault("executor_options", dict(self.options))
        return pipeline.run(executors=self.lookup, **options)

    def __str__(self) -> str:
        return self.name
