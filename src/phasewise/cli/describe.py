"""Text for ``phasewise list``, ``phasewise graph`` and ``phasewise executors``, and the
``-j`` warning of ``phasewise run``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from phasewise.cli.palette import fill_of
from phasewise.cli.report import format_table
from phasewise.core.model import Pipeline

__all__ = [
    "GRAPH_FORMATS",
    "condition_name",
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
    """The phases in execution order with dependencies, parallel flag, executor, weight;
    then, if any phase sets them, labels, params and folders used, conditions, cache,
    groups and the rest (``_details_table``)."""
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
    if pipeline.params is not None:
        flags.append(f"params: {', '.join(sorted(pipeline.params)) or 'none'}")
    head = f"pipeline {pipeline.name!r}: {len(pipeline)} phases ({', '.join(flags)})"
    table = format_table(headers, rows)
    details = _details_table(pipeline)
    more = f"\n\n{details}" if details else ""
    return f"{head}\n\n{table}{more}\n\n{overlap_line(pipeline)}\n"


_DETAIL_HEADERS = ("phase", "label", "uses", "when", "cache", "group", "also")


def _details_table(pipeline: Pipeline) -> str:
    """A second table for what phases set beyond the first one's columns (label, the
    params and folder the handler asks for, condition, cache, group, review, checks,
    hooks, error type): a row only for a phase that sets something, a column only for
    what some phase sets; empty if none does."""
    groups = _groups(pipeline)
    rows = []
    for name in pipeline.execution_order():
        phase = pipeline.phase(name)
        row = (name, phase.label if phase.label != name else "",
               ", ".join(a for a in phase.asks if a != "context"),
               condition_name(phase.when) if phase.when is not None else "",
               _cache(phase.cache), groups.get(name, ""), ", ".join(_also(phase)))
        if any(row[1:]):
            rows.append(row)
    if not rows:
        return ""
    keep = [0] + [i for i in range(1, len(_DETAIL_HEADERS)) if any(r[i] for r in rows)]
    return format_table([_DETAIL_HEADERS[i] for i in keep],
                        [[r[i] or "-" for i in keep] for r in rows])


def _groups(pipeline: Pipeline) -> dict[str, str]:
    """Phase name -> the group it belongs to (``Pipeline.group``), and the group's own
    phase -> what it waits for."""
    from phasewise.core.group import gather

    found = {}
    for phase in pipeline.phases:
        if phase.handler is gather:
            found[phase.name] = f"{phase.name} (its node)"
            for member in phase.depends_on:
                found.setdefault(member, phase.name)
    return found


def _cache(value: bool | str) -> str:
    if value is False:
        return ""
    return "yes, no expiry" if value is True else str(value)


def _also(phase: Any) -> list[str]:
    also = []
    if phase.review:
        also.append("review")
    if phase.validate is not None:
        also.append("validate")
    also += [hook for hook in ("on_success", "on_failure") if getattr(phase, hook)]
    if phase.error is not None:
        also.append(f"error={phase.error.__name__}")
    if phase.policy.on_fail != "stop":
        retries = f" x{phase.policy.max_retries}" if phase.policy.on_fail == "retry" else ""
        also.append(f"on_fail={phase.policy.on_fail}{retries}")
    if phase.timeout is not None:
        also.append(f"timeout={phase.timeout:g}s")
    return also


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


def condition_name(fn: Any) -> str:
    """How ``phasewise list`` and the dry run name a ``when`` predicate: its name, or for a
    lambda its source text when that can be found."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    if name.endswith("<lambda>"):
        return _lambda_source(fn) or "a lambda"
    return name


def _lambda_source(fn: Any, limit: int = 50) -> str | None:
    import ast
    import inspect
    import textwrap

    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    for text in (source, source.strip().rstrip(",)")):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        if len(lambdas) == 1:
            segment = ast.get_source_segment(text, lambdas[0]) or ""
            segment = " ".join(segment.split())
            return segment if len(segment) <= limit else segment[: limit - 1] + "…"
    return None


def render_graph(pipeline: Pipeline, fmt: str,
                 statuses: Mapping[str, str] | None = None) -> str:
    """The dependency graph as Mermaid or Graphviz dot; parallel phases are drawn rounded.

    ``statuses`` (phase name to status, as a run left them) colors each node by its
    status (``palette.STATUS_FILL``); phases it does not name are left uncolored."""
    if fmt == "mermaid":
        return _mermaid(pipeline, statuses or {})
    if fmt == "dot":
        return _dot(pipeline, statuses or {})
    raise ValueError(f"graph format must be one of {list(GRAPH_FORMATS)}, got {fmt!r}")


def _edges(pipeline: Pipeline) -> Iterable[tuple[str, str]]:
    for name in pipeline.execution_order():
        for dep in pipeline.phase(name).depends_on:
            yield dep, name


def _mermaid(pipeline: Pipeline, statuses: Mapping[str, str]) -> str:
    rounded = {name for name in pipeline.execution_order() if pipeline.phase(name).parallel}
    return mermaid_flowchart(pipeline.execution_order(), _edges(pipeline), statuses, rounded)


def mermaid_flowchart(names: Sequence[str], edges: Iterable[tuple[str, str]],
                      statuses: Mapping[str, str], rounded: Set[str] = frozenset(),
                      note: str = "") -> str:
    """A Mermaid flowchart of the phases ``names``, an edge per (dependency, dependant)
    pair of ``edges``, ``rounded`` nodes drawn with rounded corners, each node named in
    ``statuses`` filled with its status's color; ``note`` becomes a comment line."""
    # ids are generated: phase names may hold characters Mermaid does not allow in ids
    ids = {name: f"p{i}" for i, name in enumerate(names)}
    lines = ["flowchart TD"]
    if note:
        lines.append(f"    %% {note}")
    for name, node in ids.items():
        label = name.replace('"', "#quot;")
        lines.append(f'    {node}("{label}")' if name in rounded else f'    {node}["{label}"]')
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in edges if a in ids and b in ids]
    used = sorted({status for name, status in statuses.items() if name in ids})
    lines += [f"    classDef {status} fill:{fill_of(status)},stroke:#555" for status in used]
    for status in used:
        nodes = ",".join(ids[name] for name in ids if statuses.get(name) == status)
        lines.append(f"    class {nodes} {status}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # double-quoted, \" and \\ escaped


def _dot(pipeline: Pipeline, statuses: Mapping[str, str]) -> str:
    lines = [f"digraph {_dot_id(pipeline.name)} {{", "    node [shape=box];"]
    for name in pipeline.execution_order():
        styles = ["rounded"] if pipeline.phase(name).parallel else []
        attributes = []
        if name in statuses:
            styles.append("filled")
            attributes.append(f'fillcolor="{fill_of(statuses[name])}"')
            attributes.append(f"tooltip={_dot_id(statuses[name])}")
        if styles:
            attributes.insert(0, f'style="{",".join(styles)}"')
        listed = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {_dot_id(name)}{listed};")
    lines += [f"    {_dot_id(a)} -> {_dot_id(b)};" for a, b in _edges(pipeline)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe_executors(entries: Iterable[Any]) -> str:
    """A table of installed executors: name, distribution, one-line description."""
    rows = [(e.name, e.distribution, e.description) for e in entries]
    return format_table(("executor", "distribution", "description"), rows) + "\n"
