"""The interactive detail view in a terminal: ``phasewise watch`` and ``phasewise run --tui``.

Both draw one Store whose reducer is ``make_detail_reducer`` (core/view.py) over a
pipeline reducer; every decision about what is selected, expanded, scrolled or followed
is that reducer's, and this package only lays its ``PipelineViewState`` out::

    keys:    tty ─▶ KeyDecoder ─▶ Key ─▶ Action("@@KEY") ─▶ view Store
    watch:   journal.jsonl, logs.jsonl ─▶ (polled, ≤ 10/s) ─▶ phase actions ─▶ view Store
    --tui:   the run's Store ─▶ store.observe ─▶ each action ─▶ view Store
    drawing: view Store.state ─▶ render_view ─▶ the terminal (≤ 10 frames/s, when the
             state changed, and once a second for the clocks of running phases)

One module a part, each importing only those listed above it:

- ``keys``: ``KeyDecoder``, the bytes a terminal sends turned into ``Key``s;
- ``screen``: ``render_view``, the lines of one frame of a ``PipelineViewState``;
- ``terminal``: ``Terminal``, cbreak mode and the alternate screen while the view is up,
  put back on every way out;
- ``loop``: ``ViewLoop``, what both views run: keys into the view Store, frames out;
- ``watch``: ``watch_workdir(workdir) -> int``, ``phasewise watch``: a run kept in a work
  directory, followed through its journal and log file, read-only;
- ``reporter``: ``DetailViewReporter``, the reporter plugin of ``phasewise run --tui``.

The public names of those modules are importable from here too.
"""

from __future__ import annotations

from phasewise.cli.tui.keys import KeyDecoder
from phasewise.cli.tui.loop import FRAME_INTERVAL
from phasewise.cli.tui.reporter import DetailViewReporter
from phasewise.cli.tui.screen import SYMBOLS, render_view
from phasewise.cli.tui.terminal import Terminal
from phasewise.cli.tui.watch import WATCH_MAX_LOGS, journal_action, watch_workdir

__all__ = [
    "FRAME_INTERVAL",
    "SYMBOLS",
    "WATCH_MAX_LOGS",
    "DetailViewReporter",
    "KeyDecoder",
    "Terminal",
    "journal_action",
    "render_view",
    "watch_workdir",
]
