"""One color per phase status, shared by what the CLI draws of a run (the graph, the HTML
report, the detail view), so a status looks the same wherever it is shown. (The live
display, a plugin, keeps its own terminal styles in plugins/live.py: plugins do not
import the CLI.)"""

from __future__ import annotations

__all__ = ["STATUS_FILL", "STATUS_STYLE", "fill_of"]

STATUS_FILL = {
    "pending": "#eeeeee",
    "running": "#90caf9",
    "retrying": "#ffe082",
    "completed": "#a5d6a7",
    "failed": "#ef9a9a",
    "skipped": "#cfd8dc",
    "cancelled": "#ffcc80",
}
"""Background colors (CSS hex) for a phase of each status."""

STATUS_STYLE = {
    "pending": "dim",
    "running": "blue",
    "retrying": "yellow",
    "completed": "green",
    "failed": "red",
    "skipped": "bright_black",
    "cancelled": "dark_orange",
}
"""rich styles for a phase of each status, in a terminal."""


def fill_of(status: str) -> str:
    return STATUS_FILL.get(status, STATUS_FILL["pending"])
