"""The commands that show a run kept in a work directory, from another process: ``watch``
(the interactive detail view, following the run), ``report`` (one HTML file) and ``mcp``
(the run's timeline for AI agents, over stdio).

``register(cli)`` adds them to the ``phasewise`` group. Each reads the work directory
without taking its lock, so it may look at a run in progress, and never changes it; the
work of each lives in its own module, imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["register"]

WORKDIR_HELP = "The run's work directory (default: the one under ./.phasewise)."


@click.command()
@click.option("--workdir", metavar="DIR", default=None, help=WORKDIR_HELP)
def watch(workdir: str | None) -> None:
    """Follow a run in another terminal: the interactive detail view of a work directory.

    One row per phase with its status, and the selected phase's output. ↑/↓ select a
    phase, Enter or space expands its output (↑/↓ then scroll it, g/G jump to the
    top/bottom, f toggles following the newest lines), Escape collapses it, q quits.
    Read-only: quitting never stops the run it watches.
    """
    from phasewise.cli.status import workdir_option
    from phasewise.cli.tui import watch_workdir

    raise SystemExit(watch_workdir(workdir_option(workdir)))


@click.command()
@click.option("--workdir", metavar="DIR", default=None, help=WORKDIR_HELP)
@click.option("-o", "--output", metavar="FILE", default="report.html", show_default=True,
              help="Where to write the report.")
@click.option("--open", "open_it", is_flag=True, default=False,
              help="Open the report in the browser once written.")
def report(workdir: str | None, output: str, open_it: bool) -> None:
    """Write a run's report as one self-contained HTML file (no network needed).

    A summary table, then a Gantt chart of when each phase ran, on which executor and
    worker, colored by status, with retries, cache hits and durations; the critical
    path is highlighted, and each phase's last lines of output show on hover or click.
    Built from the work directory's journal and log file.
    """
    from phasewise.cli.html_report import write_report
    from phasewise.cli.status import workdir_option

    written = write_report(workdir_option(workdir), Path(output))
    click.echo(f"phasewise: report written to {written}", err=True)
    if open_it:
        import webbrowser

        webbrowser.open(written.absolute().as_uri())


@click.command()
@click.option("--workdir", metavar="DIR", default=None, help=WORKDIR_HELP)
def mcp(workdir: str | None) -> None:
    """Serve a run's timeline to AI agents over stdio (Model Context Protocol).

    The resource phasewise://pipeline/timeline is the run's `phasewise status --json`
    document, live; the tools `status`, `logs(phase, tail)` and `graph` answer
    questions about it. Needs the `mcp` extra: pip install 'phasewise[mcp]'.
    """
    from phasewise.cli.mcp_server import serve

    serve(workdir)


def register(group: click.Group) -> None:
    """Add ``watch``, ``report`` and ``mcp`` to the ``phasewise`` group."""
    for command in (watch, report, mcp):
        group.add_command(command)
