"""One frame of the detail view: ``render_view`` lays a ``PipelineViewState`` out as the
lines of a terminal of a given size (a headline, a row per phase, the selected phase's
output, the keys); what is selected, expanded or scrolled is the view reducer's."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from phasewise.cli.palette import STATUS_STYLE
from phasewise.core.state import PhaseStatus, PipelineState
from phasewise.core.view import PipelineViewState
from phasewise.plugins.reporters import elapsed_text, printable, short_duration, where_text

__all__ = ["SYMBOLS", "render_view"]

SYMBOLS = {"pending": "·", "running": "▶", "retrying": "↻", "completed": "✓",
           "failed": "✗", "skipped": "»", "cancelled": "⊘"}

_KEYS_OVERVIEW = "↑↓ select · enter output · q quit"
_KEYS_EXPANDED = "↑↓ scroll · g/G top/bottom · f follow · esc back · q quit"


def render_view(view: PipelineViewState, *, width: int, height: int, now: float,
                note: str = "") -> list[Text]:
    """The screen for ``view``: ``height`` lines of at most ``width`` cells.

    A headline, one row per phase (a window of them around the selected one when they do
    not all fit), the selected phase's output under them when expanded, and a last line
    with ``note`` and the keys. ``now`` is the clock the state's start times were taken
    from, for the elapsed time of what still runs.
    """
    state, phases = view.pipeline, view.pipeline.phases
    lines = [_headline(state, now)]
    body = max(0, height - 2)
    panel: list[Text] = []
    if view.expanded and 0 <= view.selected_phase < len(phases):
        panel = _log_panel(phases[view.selected_phase], view, max(0, body - 1))
    rows = body - len(panel)
    first = _window(len(phases), view.selected_phase, rows)
    columns = _columns(phases, width)
    lines += [_row(phases[i], i == view.selected_phase, columns, now)
              for i in range(first, min(len(phases), first + rows))]
    lines += panel
    lines += [Text("") for _ in range(height - 1 - len(lines))]
    keys = _KEYS_EXPANDED if view.expanded else _KEYS_OVERVIEW
    footer = Text(note, style="bold") if note else Text("")
    footer.append(("   " if note else "") + keys, style="dim")
    lines.append(footer)
    for line in lines:
        line.truncate(width, overflow="crop")
        line.rstrip()
        line.no_wrap = True
    return lines[:height]


def _headline(state: PipelineState, now: float) -> Text:
    counts = state.counts()
    done = counts.get("completed", 0) + counts.get("skipped", 0)
    elapsed = (now - state.started_at if state.status == "running" and state.started_at
               else state.elapsed)
    line = Text(state.name or "pipeline", style="bold")
    line.append(" · ")
    line.append(state.status, style=STATUS_STYLE.get(state.status, ""))
    line.append(f" · {done}/{len(state.phases)} done ({state.progress:.0%})"
                f" · {short_duration(max(0.0, elapsed))}")
    failed = counts.get("failed", 0)
    if failed:
        line.append(f" · {failed} failed", style=STATUS_STYLE["failed"])
    return line


def _window(count: int, selected: int, rows: int) -> int:
    """The first phase row shown: all fit, or the selected one stays in the middle."""
    if count <= rows or rows <= 0:
        return 0
    return min(max(0, selected - rows // 2), count - rows)


def _columns(phases: Sequence[PhaseStatus], width: int) -> tuple[int, int]:
    names = max((len(p.name) for p in phases), default=0)
    wheres = max((len(where_text(p.executor, p.worker)) for p in phases), default=0)
    return min(names, max(8, width // 3)), min(wheres, 28)


def _row(phase: PhaseStatus, selected: bool, columns: tuple[int, int], now: float) -> Text:
    name_width, where_width = columns
    style = STATUS_STYLE.get(phase.status, "")
    row = Text("› " if selected else "  ", style="bold" if selected else "")
    row.append(f"{SYMBOLS.get(phase.status, '?')} ", style=style)
    name = phase.name if len(phase.name) <= name_width else phase.name[: name_width - 1] + "…"
    row.append(f"{name:<{name_width}}  ", style="bold reverse" if selected else "")
    row.append(f"{phase.status:<9}", style=style)
    where = where_text(phase.executor, phase.worker)[:where_width]
    row.append(f"  {where:<{where_width}}  ", style="cyan")
    row.append(f"{elapsed_text(phase, now):>7}")
    extra = []
    if phase.attempt > 1:
        extra.append(f"attempt {phase.attempt}")
    if phase.cached:
        extra.append("cached")
    if extra:
        row.append("  " + ", ".join(extra), style="yellow")
    error = phase.error.strip()
    if error and phase.status in ("failed", "retrying", "skipped", "cancelled"):
        row.append("  " + printable(error.splitlines()[0]), style=style)
    return row


def _log_panel(phase: PhaseStatus, view: PipelineViewState, room: int) -> list[Text]:
    """The title line and the lines the view has scrolled to, in ``room`` lines at most
    (when fewer than ``log_height`` fit, those nearest the newest when following)."""
    if room <= 0:
        return []
    logs = phase.logs
    window = logs[view.log_scroll : view.log_scroll + view.log_height]
    fit = room - 1
    skip = max(0, len(window) - fit) if view.auto_follow else 0
    shown = window[skip : skip + fit]
    if shown:
        first = view.log_scroll + skip + 1
        span = f"lines {first}-{first + len(shown) - 1} of {len(logs)}"
    else:
        span = "no output yet"
    title = Text(f"── {phase.name} · {span}", style="bold")
    title.append(" · following" if view.auto_follow else " · paused (f follows)",
                 style="green" if view.auto_follow else "yellow")
    title.append(" ──", style="bold")
    panel = [title]
    for entry in shown:
        stderr = entry.stream == "stderr"
        panel.append(Text(f"  {'!' if stderr else '|'} {printable(entry.line)}",
                          style="red" if stderr else ""))
    return panel

