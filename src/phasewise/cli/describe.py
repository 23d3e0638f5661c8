"""Text for ``phasewise list``, ``phasewise graph`` and ``phasewise executors``, and the
``-j`` warning of ``phasewise run``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from phasewise.cli.report import format_table
from phasewise.core.model import Pipeline

__all__ = [
    "GRAPH_FORMATS",
    "describe_executors",
    "describe_pipeline",
    "no_parallel_warning",
    "overlap_line",
    "render_graph",
]

GRAPH_FORMATS = ("mermaid", "dot")


def _weight(value: float) -> str:
    return f"{value:g}"


def describe_pipeline(pipeline: Pipeline) -> str:
    """The phases in execution order with dependencies, parallel flag, executor, weight."""
    rows = []
    for index, name in enumerate(pipeline.execution_order(), start=1):
        phase = pipeline.phase(name)
        rows.append((
            str(index),
            name,
            ", ".join(phase.depends_on) or "-",
            "yes" if phase.parallel else "no",
            phase.executor or "(run's)",
            _weight(phase.weight),
            phase.description,
        ))
    headers = ("#", "phase", "depends on", "parallel", "executor", "weight", "description")
    flags = [f"capture_output={pipeline.capture_output}", f"fail_fast={pipeline.fail_fast}"]
    head = f"pipeline {pipeline.name!r}: {len(pipeline)} phases ({', '.join(flags)})"
    return f"{head}\n\n{format_table(headers, rows)}\n\n{overlap_line(pipeline)}\n"


def overlap_line(pipeline: Pipeline) -> str:
    """Which phases may run at the same time (``parallel=True``), in execution order."""
    together = [name for name in pipeline.execution_order() if pipeline.phase(name).parallel]
    if not together:
        return "every phase runs alone (parallel=False): -j has no effect"
    if len(together) == len(pipeline):
        return "every phase may run at the same time as others (parallel=True), up to -j N"
    return f"may run at the same time: {', '.join(together)} (parallel=True); the others run alone"


def no_parallel_warning(pipeline: Pipeline, max_workers: int | None) -> str | None:
    """The warning for ``-j N`` (N > 1) on a pipeline none of whose phases may overlap."""
    if max_workers is None or max_workers <= 1 or any(p.parallel for p in pipeline.phases):
        return None
    return (
        f"phasewise: warning: -j {max_workers} has no effect: every phase of "
        f"{pipeline.name!r} runs alone (parallel=False); let phases overlap with "
        "Pipeline(..., parallel=True) or Phase(..., parallel=True)"
    )


def render_graph(pipeline: Pipeline, fmt: str) -> str:
    """The dependency graph as Mermaid or Graphviz dot; parallel phases are drawn rounded."""
    if fmt == "mermaid":
        return _mermaid(pipeline)
    if fmt == "dot":
        return _dot(pipeline)
    raise ValueError(f"graph format must be one of {list(GRAPH_FORMATS)}, got {fmt!r}")


def _edges(pipeline: Pipeline) -> Iterable[tuple[str, str]]:
    for name in pipeline.execution_order():
        for dep in pipeline.phase(name).depends_on:
            yield dep, name


def _mermaid(pipeline: Pipeline) -> str:
    # ids are generated: phase names may hold characters Mermaid does not allow in ids
    ids = {name: f"p{i}" for i, name in enumerate(pipeline.execution_order())}
    lines = ["flowchart TD"]
    for name, node in ids.items():
        label = name.replace('"', "#quot;")
        shape = f'("{label}")' if pipeline.phase(name).parallel else f'["{label}"]'
        lines.append(f"    {node}{shape}")
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in _edges(pipeline)]
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # double-quoted, \" and \\ escaped


def _dot(pipeline: Pipeline) -> str:
    lines = [f"digraph {_dot_id(pipeline.name)} {{", "    node [shape=box];"]
    for name in pipeline.execution_order():
        style = ' [style="rounded"]' if pipeline.phase(name).parallel else ""
        lines.append(f"    {_dot_id(name)}{style};")
    lines += [f"    {_dot_id(a)} -> {_dot_id(b)};" for a, b in _edges(pipeline)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe_executors(entries: Iterable[Any]) -> str:
    """A table of installed executors: name, distribution, one-line description."""
    rows = [(e.name, e.distribution, e.description) for e in entries]
    return format_table(("executor", "distribution", "description"), rows) + "\n"
