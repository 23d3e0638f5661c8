"""Tables and the JSON document that ``phasewise`` commands print.

The progress lines and the summary of ``phasewise run`` are the built-in reporter
plugin's (``phasewise.plugins.reporters``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from phasewise.core.state import PipelineState
from phasewise.core.timeline import pipeline_to_timeline

__all__ = ["format_table", "json_document"]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    body = [list(map(str, row)) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in body)])


def json_document(state: PipelineState, results: Mapping[str, Any]) -> str:
    """``pipeline_to_timeline(state)`` plus ``"results"``: JSON values kept, others repr'd."""
    doc = pipeline_to_timeline(state)
    doc["results"] = {name: _jsonable(value) for name, value in results.items()}
    return json.dumps(doc, indent=2)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value
