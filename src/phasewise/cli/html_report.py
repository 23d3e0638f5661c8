"""``phasewise report``: a run kept in a work directory as one self-contained HTML file.

::

    journal.jsonl ─▶ attempts (a bar per start..end) ─┐
    pipeline-state.json ─▶ load_ledger (per phase) ───┼─▶ summary table + SVG Gantt ─▶ FILE
    logs.jsonl ─▶ tail_logs (last lines per phase) ───┘        (+ a little CSS/JS)

The three files are read into a ``RunView`` by run_history.py; this module draws it.
A bar per attempt, in execution order, placed by wall clock on its worker's lane (an
executor and worker: ``process · pid 1234``; ``thread`` in-process), colored by status
(``palette.STATUS_FILL``): an attempt that was retried is a ``retrying`` bar, a cache
hit a hatched one on the ``cache`` lane, a phase that never started a thin mark on the
``not started`` lane. The critical path, the longest chain by duration through the
dependency graph ending at the last phase to finish, is outlined (journals written
before the run record named ``depends_on`` have none). Hovering a bar shows its phase's
last lines (an SVG ``<title>``); clicking one opens a panel with more.

The SVG is drawn here, not by script, so the file reads the same without JavaScript;
every bar is ``<rect class="bar" data-phase data-status data-attempt ...>``. Nothing in
the file refers to the network. ``report.html#phase=NAME`` opens with NAME's panel shown.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from phasewise.cli.palette import STATUS_FILL, fill_of
from phasewise.cli.run_history import (
    CACHE_LANE,
    LINE_CHARS,
    NOT_STARTED_LANE,
    TAIL_LINES,
    Attempt,
    RunView,
    load_view,
)

__all__ = ["render_report", "write_report"]

LOG_BUDGET = 1_000_000
"""Characters of captured lines in one report at most: past it, every phase keeps fewer
of its last lines (one at least), so a run of many talkative phases stays small."""

_LEFT, _WIDTH, _ROW, _BAR, _TOP = 180, 1000, 16, 12, 34  # the chart's geometry, in px
_MAX_TRACKS = 32  # rows within one lane at most; further overlapping bars share them


def write_report(workdir: Path, output: Path) -> Path:
    """Write the report of the run kept in ``workdir`` to ``output`` (replaced whole, or
    not at all) and return its path; ``BadInput`` when there is no run to report or the
    file cannot be written."""
    from phasewise.cli.errors import BadInput
    from phasewise.core.errors import PhasewiseError

    try:
        view = load_view(workdir)
    except (ValueError, PhasewiseError, OSError) as exc:
        raise BadInput(str(exc)) from None
    if output.is_dir():
        raise BadInput(f"cannot write the report to {output}: it is a directory; pass "
                       "-o FILE")
    data = render_report(view).encode("utf-8", errors="replace")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or ".")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(temp, 0o644)
            os.replace(temp, output)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError as exc:
        raise BadInput(f"cannot write the report to {output}: {exc.strerror or exc}"
                       ) from None
    return output


# ── rendering ───────────────────────────────────────────────────────────────


def render_report(view: RunView) -> str:
    """The whole HTML document."""
    critical = view.critical
    title = escape(f"phasewise report: {view.pipeline}")
    return "".join((
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
        f"</title><style>{_CSS}</style></head><body>\n<h1>{title}</h1>\n",
        _summary(view, critical), _gantt(view, set(critical)),
        '<aside id="panel" hidden><button id="close" type="button">close</button>'
        '<div id="panel-body"></div></aside>\n',
        f"<script>{_JS}</script>\n</body></html>\n",
    ))


def _summary(view: RunView, critical: list[str]) -> str:
    counts: dict[str, int] = {}
    for phase in view.phases:
        counts[phase["status"]] = counts.get(phase["status"], 0) + 1
    every = [a for runs in view.attempts.values() for a in runs]
    end = view.finished or max((a.end for a in every), default=view.started)
    elapsed = end - view.started if view.started else 0.0
    if view.depends_on is None:
        path = "not recorded (this run's journal names no dependencies)"
    elif critical:
        total = sum(a.end - a.start for n in critical for a in view.attempts.get(n, ()))
        shown = critical if len(critical) <= 12 else [*critical[:5], "…", *critical[-5:]]
        path = f"{' → '.join(shown)} ({len(critical)} phases, {_duration(total)})"
    else:
        path = "none (no phase ran)"
    facts = [
        ("pipeline", view.pipeline),
        ("status", view.status),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view.started))
         if view.started else "not started"),
        ("elapsed", _duration(elapsed)),
        ("phases", f"{len(view.phases)}: " + ", ".join(f"{n} {s}" for s, n in counts.items())),
        ("attempts", f"{len(every)} ({sum(a.status == 'retrying' for a in every)} retried, "
                     f"{sum(a.cached for a in every)} cache hits)"),
        ("critical path", path),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    out = [f'<table class="facts" data-status="{escape(view.status)}">{rows}</table>\n',
           '<div class="rows"><table id="phases"><thead><tr><th>phase</th><th>status</th>'
           "<th>executor</th><th>worker</th><th>attempts</th><th>duration</th><th>cached</th><th>error</th>"
           "</tr></thead><tbody>\n"]
    on_path = set(critical)
    for p in view.phases:
        name, status = escape(p["name"]), escape(p["status"])
        error = escape(str(p.get("error") or "")[:LINE_CHARS])
        mark = ' class="crit"' if p["name"] in on_path else ""
        out.append(
            f'<tr data-phase="{name}" data-status="{status}"{mark}><td>{name}'
            f'<td><i class="s-{status}"></i>{status}'  # end tags of cells left out
            f'<td>{escape(str(p.get("executor") or ""))}'
            f'<td>{escape(str(p.get("worker") or ""))}<td>{p.get("attempt", 0)}'
            f'<td>{_duration(float(p.get("elapsed") or 0.0))}'
            f'<td>{"yes" if p.get("cached") else ""}<td>{error}\n')
    out.append("</tbody></table></div>\n")
    return "".join(out)


def _gantt(view: RunView, critical: set[str]) -> str:
    order = [p["name"] for p in view.phases]
    bars = [a for name in order for a in view.attempts.get(name, ())]
    if not bars:
        return '<p class="empty">No phase has started in this run.</p>\n'
    t0 = min(a.start for a in bars)
    span = max(max(a.end for a in bars) - t0, 1e-6)

    def x_of(t: float) -> float:
        return _LEFT + (t - t0) / span * _WIDTH

    placed, lanes = _place(bars, x_of)
    height = _TOP + sum(tracks for _, tracks in lanes) * _ROW + 8
    out = [f'<h2>Timeline</h2>\n{_LEGEND}<div class="chart"><svg id="gantt" '
           f'width="{_LEFT + _WIDTH + 20}" '
           f'height="{height}" font-size="11">'
           '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="2" height="4" fill="#0000004d"/>'
           "</pattern></defs>\n"]
    y = _TOP
    for number, (label, tracks) in enumerate(lanes):
        shown = label if len(label) <= 27 else label[:26] + "…"
        out.append(f'<rect class="lane{number % 2}" x="0" y="{y}" width="{_LEFT + _WIDTH + 20}" '
                   f'height="{tracks * _ROW}"/><text class="lane-label" x="6" '
                   f'y="{y + _ROW - 4}">{escape(shown)}<title>{escape(label)}</title></text>\n')
        y += tracks * _ROW
    out.append(_axis(span, height))
    tails = _tails(view.tails)
    last = {a.phase: a for a in bars}  # a phase's last bar carries its last lines
    for a, (x, y, w) in zip(bars, placed, strict=True):
        crit = a.phase in critical
        marks = (' data-cached="1"' if a.cached else "") + (' data-critical="1"' if crit else "")
        duration = _duration(a.end - a.start)
        text = (f"{a.phase} · attempt {a.attempt} · {a.status}"
                f"{' (cache hit)' if a.cached else ''} · {duration} · {a.lane}"
                f"{chr(10) + a.error if a.error else ''}"
                f"{tails.get(a.phase, '') if last[a.phase] is a else ''}")
        out.append(
            f'<rect class="bar{" crit" if crit else ""}{" cached" if a.cached else ""}" '
            f'data-phase="{escape(a.phase)}" data-status="{a.status}" '
            f'data-attempt="{a.attempt}"{marks} x="{x:.1f}" y="{y}" width="{w:.1f}" '
            f'fill="{fill_of(a.status)}"><title>{escape(text)}</title></rect>')
        if a.cached:
            out.append(f'<rect class="hatch" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                       'fill="url(#hatch)"/>')
        label = f"{a.phase} {duration}"
        if w >= 7 * len(label) + 6:
            out.append(f'<text class="lbl" x="{x + 3:.1f}" y="{y + _BAR - 2}">'
                       f"{escape(label)}</text>")
        elif w >= 7 * len(duration) + 6:
            out.append(f'<text class="lbl" x="{x + 3:.1f}" y="{y + _BAR - 2}">{duration}</text>')
        out.append("\n")
    out.append("</svg></div>\n")
    return "".join(out)


def _place(bars: Sequence[Attempt], x_of: Any
           ) -> tuple[list[tuple[float, int, float]], list[tuple[str, int]]]:
    """Each bar's (x, y, width), and the lanes in order of first use with how many rows
    each needs: overlapping bars of a lane go on rows of their own."""
    lane_order: dict[str, list[float]] = {}  # lane -> the right end of each of its rows
    spots: dict[int, tuple[str, int, float, float]] = {}  # bar's index -> where it goes
    for index in sorted(range(len(bars)), key=lambda i: (bars[i].start, bars[i].end)):
        a = bars[index]
        x0 = x_of(a.start)
        x1 = max(x_of(a.end), x0 + 3.0)
        rows = lane_order.setdefault(a.lane, [])
        free = next((i for i, right in enumerate(rows) if right <= x0), None)
        if free is None:
            if len(rows) < _MAX_TRACKS:
                rows.append(x1)
                free = len(rows) - 1
            else:
                free = min(range(len(rows)), key=rows.__getitem__)
        rows[free] = max(rows[free], x1)
        spots[index] = (a.lane, free, x0, x1 - x0)
    first: dict[str, int] = {}
    y = _TOP
    special = {CACHE_LANE: 1, NOT_STARTED_LANE: 2}  # after the workers' lanes
    lanes = sorted(lane_order, key=lambda lane: special.get(lane, 0))
    for lane in lanes:
        first[lane] = y
        y += len(lane_order[lane]) * _ROW
    placed = []
    for index in range(len(bars)):
        lane, row, x, w = spots[index]
        placed.append((x, first[lane] + row * _ROW + (_ROW - _BAR) // 2, w))
    return placed, [(lane, len(lane_order[lane])) for lane in lanes]


def _axis(span: float, height: int) -> str:
    step = _nice_step(span / 8)
    out = []
    tick = 0.0
    while tick <= span + 1e-9:
        x = _LEFT + tick / span * _WIDTH
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{_TOP - 6}" x2="{x:.1f}" '
                   f'y2="{height}"/><text class="tick-label" x="{x:.1f}" y="{_TOP - 10}">'
                   f"{_duration(tick)}</text>")
        tick += step
    return "".join(out) + "\n"


def _nice_step(raw: float) -> float:
    scale = 10 ** int(f"{raw:e}".split("e")[1])
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= raw)


def _tails(tails: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, str]:
    """Each phase's last lines as the end of its hover text (``! ``: from stderr), as
    many of them as ``LOG_BUDGET`` leaves each phase."""
    texts = {name: [("! " if stream == "stderr" else "") + line for stream, line in lines]
             for name, lines in tails.items() if lines}
    keep = TAIL_LINES
    while keep > 1 and sum(len(line) + 1 for lines in texts.values()
                           for line in lines[-keep:]) > LOG_BUDGET:
        keep = keep * 2 // 3
    return {name: _TAIL_MARK + "\n".join(lines[-keep:]) for name, lines in texts.items()}


_TAIL_MARK = "\n── last lines ──\n"


def _duration(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1000:.2f}ms" if seconds > 0 else "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


_LEGEND = '<p class="legend">' + "".join(
    f'<span><i class="s-{status}"></i>{status}</span>' for status in STATUS_FILL) + (
    '<span><i class="crit"></i>critical path</span>'
    '<span><i class="hatched"></i>cache hit</span></p>\n')

_SWATCHES = "".join(f".s-{status}{{background:{color}}}"
                    for status, color in STATUS_FILL.items())

_CSS = _SWATCHES + """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:16px 0 4px}
table{border-collapse:collapse;margin-bottom:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
.facts th{background:#f5f5f5}
.rows{max-height:40vh;overflow:auto;display:inline-block;margin-bottom:8px}
#phases{margin:0}#phases thead th{position:sticky;top:0;background:#f5f5f5}
#phases tbody tr:hover{background:#f5f9ff;cursor:pointer}
#phases tr.crit td:first-child{font-weight:bold}
i{display:inline-block;width:10px;height:10px;margin-right:4px;border:1px solid #999}
i.crit{border:2px solid #b71c1c;width:8px;height:8px}
i.hatched{background:repeating-linear-gradient(45deg,#a5d6a7 0 2px,#555 2px 3px)}
.legend span{margin-right:12px}
.chart{overflow-x:auto}
.lane0{fill:#fafafa}.lane1{fill:#f0f0f0}
.lane-label{fill:#333}.tick{stroke:#ddd}.tick-label{fill:#666;text-anchor:middle}
.bar,.hatch{height:12px}.bar{stroke:#0000004d;stroke-width:.5;cursor:pointer}
.bar.crit{stroke:#b71c1c;stroke-width:2}
.bar.sel{stroke:#000;stroke-width:2.5}
.hatch,.lbl{pointer-events:none}.lbl{fill:#111;font-size:10px}
#panel{position:fixed;right:12px;bottom:12px;width:min(640px,90vw);max-height:60vh;
overflow:auto;background:#fff;border:1px solid #888;box-shadow:0 2px 8px #0004;padding:8px}
#panel pre{background:#f7f7f7;padding:6px;white-space:pre-wrap;margin:4px 0}
#panel .err{color:#b71c1c}#close{float:right}
"""

_JS = """
(function(){
var panel=document.getElementById('panel'),body=document.getElementById('panel-body');
var rows={},bars={},sel=[],MARK='\\n\\u2500\\u2500 last lines \\u2500\\u2500\\n';
document.querySelectorAll('#phases tbody tr').forEach(function(r){rows[r.dataset.phase]=r;});
document.querySelectorAll('#gantt .bar').forEach(function(b){
(bars[b.dataset.phase]=bars[b.dataset.phase]||[]).push(b);});
function el(tag,text,cls){var e=document.createElement(tag);if(text!==undefined)
e.textContent=text;if(cls)e.className=cls;return e;}
function show(name){
sel.forEach(function(b){b.classList.remove('sel');});sel=bars[name]||[];
sel.forEach(function(b){b.classList.add('sel');});
body.textContent='';body.appendChild(el('h2',name));var row=rows[name];
if(row){var c=row.cells;body.appendChild(el('p',c[1].textContent+' · '+c[2].textContent+
(c[3].textContent?' · '+c[3].textContent:'')+' · '+c[4].textContent+' attempt(s) · '+
c[5].textContent+(c[6].textContent?' · cached':'')));
if(c[7].textContent)body.appendChild(el('p',c[7].textContent,'err'));}
sel.forEach(function(b){body.appendChild(el('div',b.firstChild.textContent.split('\\n')[0]));});
if(row&&row.classList.contains('crit'))body.appendChild(el('p','on the critical path'));
var last=sel.length?sel[sel.length-1].firstChild.textContent.split(MARK):[];
var lines=last.length>1?last[1].split('\\n'):[];
body.appendChild(el('h3',lines.length?'last '+lines.length+' line(s)':'no output captured'));
if(lines.length)body.appendChild(el('pre',lines.join('\\n')));
panel.hidden=false;}
document.getElementById('gantt')&&document.getElementById('gantt').addEventListener(
'click',function(e){var t=e.target.closest('.bar');if(t)show(t.dataset.phase);});
document.getElementById('phases').addEventListener('click',function(e){
var t=e.target.closest('tr[data-phase]');if(t)show(t.dataset.phase);});
document.getElementById('close').addEventListener('click',function(){panel.hidden=true;});
document.addEventListener('keydown',function(e){if(e.key==='Escape')panel.hidden=true;});
var hash=/^#phase=(.*)$/.exec(location.hash);if(hash)show(decodeURIComponent(hash[1]));
document.body.dataset.ready='1';
})();
"""
