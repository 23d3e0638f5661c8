"""The ``phasewise`` command: run, list, graph, status, cache (and, from
cli/plugin_commands.py, plugins and executors; from cli/views.py, watch, report, mcp).

Exit codes: 0 the pipeline completed, 1 it failed, 2 bad input (a usage error, printed
as one short message without a traceback), 130 interrupted with Ctrl-C. A reader that
goes away (``phasewise run x.py | head``) does not change the exit code (cli/pipes.py).

Past 400 lines for now: most of it is ``run``'s options and their help text, which read
best next to the command; moving ``status`` and ``cache`` next to their logic in
cli/status.py is the obvious next split.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TextIO

import click
from click.core import ParameterSource

from phasewise import __version__
from phasewise.cli.errors import BadInput
from phasewise.cli.plugin_commands import register as register_plugin_commands
from phasewise.cli.views import register as register_view_commands
from phasewise.core.errors import (
    ExecutorError,
    ExecutorOptionsError,
    PhasewiseError,
    PluginError,
    TargetError,
    UnknownExecutorError,
)
from phasewise.core.model import Pipeline

__all__ = ["BadInput", "cli", "main", "parse_executor_options"]



def _plugin_failure(exc: PluginError, verbose: bool = False) -> NoReturn:
    if isinstance(exc, UnknownExecutorError):
        raise BadInput(str(exc)) from None
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    raise click.ClickException(f"plugins: {exc}") from None  # exit 1: the install is broken


def _workdir_errors() -> tuple[type[Exception], ...]:
    from phasewise.core.errors import UnsafeStoreError, WorkdirError

    return (WorkdirError, UnsafeStoreError)


def _infrastructure_failure(exc: PhasewiseError, verbose: bool) -> NoReturn:
    """One ``Error:`` line for an error ``Pipeline.run`` raised (not a phase's failure);
    with ``-v`` its traceback first."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, (ExecutorError, ExecutorOptionsError)):
        # the executor cannot work as asked (bad option, interpreter missing): bad input
        raise BadInput(str(exc)) from None
    if isinstance(exc, _workdir_errors()):  # a work directory that cannot be used
        raise BadInput(str(exc)) from None
    if isinstance(exc, PluginError):
        _plugin_failure(exc)
    hint = "" if verbose else " (run with -v for the traceback)"
    raise click.ClickException(f"{type(exc).__name__}: {exc}{hint}") from None


def _default_workdir(pipeline_name: str) -> Path:
    from phasewise.durable.workdir import default_workdir

    return default_workdir(pipeline_name)


@contextlib.contextmanager
def _warnings_to(stream: TextIO) -> Iterator[None]:
    """Show phasewise's warnings during the block as one line each on ``stream``."""
    from phasewise.core.errors import PhasewiseWarning

    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, PhasewiseWarning):
            stream.write(f"phasewise: warning: {message}\n")
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _load(target: str) -> Pipeline:
    from phasewise.cli.target import load_pipeline

    try:
        return load_pipeline(target)
    except TargetError as exc:
        raise BadInput(str(exc)) from None


def parse_executor_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as keyword arguments; a VALUE that parses as JSON becomes that
    value (``4`` → 4, ``0.5`` → 0.5, ``true`` → True), any other VALUE stays a string."""
    from phasewise.cli.params import ParamsError, parse_key_values

    try:
        return parse_key_values(items, "-O/--executor-option")
    except ParamsError as exc:
        raise BadInput(str(exc)) from None


def _check_executors(
    pipeline: Pipeline, executor: str, asked_by: str = "--executor", verbose: bool = False
) -> None:
    """Fail with a usage error before anything runs if an executor is not installed.

    ``asked_by`` says where the run's executor came from (the option or the variable).
    """
    from phasewise.plugins.manager import lookup_executor

    wanted = {executor: asked_by}
    for phase in pipeline.phases:
        if phase.executor:
            wanted.setdefault(phase.executor, f"phase {phase.name!r}")
    for name, who in wanted.items():
        try:
            lookup_executor(name)
        except UnknownExecutorError as exc:
            raise BadInput(f"{exc} (asked for by {who})") from None
        except PluginError as exc:
            _plugin_failure(exc, verbose)


def _executor_source() -> str:
    """Who chose the run's executor: ``--executor``, the variable, or the default."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source("executor")
    if source is ParameterSource.ENVIRONMENT:
        return "the PHASEWISE_EXECUTOR environment variable"
    if source is ParameterSource.DEFAULT:
        return "the default of --executor"
    return "--executor"


def _given_params(params_file: str | None,
                  items: tuple[str, ...]) -> tuple[dict[str, Any], set[str]]:
    """What ``--params-file`` and ``--param`` set (``--param`` wins), and the names only
    the file set."""
    from phasewise.cli.params import ParamsError, run_params

    try:
        return run_params(params_file, items)
    except ParamsError as exc:
        raise BadInput(str(exc)) from None


def _check_params(pipeline: Pipeline, given: tuple[dict[str, Any], set[str]],
                  params_file: str | None) -> Any:
    """The run's parameters (the pipeline's defaults updated with ``given``); a name the
    defaults do not have is bad input naming the known ones (and the file it came from)."""
    values, from_file = given
    try:
        return pipeline.run_params(values)
    except ValueError as exc:
        unknown = sorted(set(values) - set(pipeline.params or {}))
        if unknown and unknown[0] in from_file:
            raise BadInput(f"--params-file {params_file}: {exc}") from None
        raise BadInput(str(exc)) from None


def _check_pause_after(pipeline: Pipeline, names: tuple[str, ...]) -> None:
    known = set(pipeline.execution_order())
    for name in names:
        if name not in known:
            raise BadInput(f"--pause-after {name}: pipeline {pipeline.name!r} has no phase "
                           f"{name!r} (its phases: {', '.join(pipeline.execution_order())})")


def _dry_run(pipeline: Pipeline, executor: str, workdir: str, params: Any, *, resume: bool,
             cache: bool, pause_after: tuple[str, ...]) -> None:
    from phasewise.cli.dryrun import describe_dry_run, plan_dry_run

    place = Path(workdir).absolute()
    try:
        plan = plan_dry_run(pipeline, place, params, resume=resume, cache=cache,
                            pause_after=pause_after)
    except PhasewiseError as exc:  # a work directory that cannot be read, or trusted
        raise BadInput(str(exc)) from None
    click.echo(describe_dry_run(pipeline, plan, executor=executor, workdir=place,
                                params=params), nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="phasewise",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Run Python pipelines phase by phase, in dependency order, on the executor you choose.

    TARGET is path/to/file.py[:attr] or package.module[:attr]; without :attr the
    module's single Pipeline is used.
    """


@cli.command()
@click.argument("target")
@click.option("--executor", "-e", default="thread", show_default=True,
              envvar="PHASEWISE_EXECUTOR", show_envvar=True,
              help="Where phases run; `phasewise executors` lists the installed ones.")
@click.option("-j", "--max-workers", type=int, default=None, metavar="N",
              help="Run at most N phases at once (default: one per CPU).")
@click.option("--capture/--no-capture", default=None,
              help="Capture what phases print and show it line by line, prefixed by the "
                   "phase name (default: the pipeline's capture_output).")
@click.option("--fail-fast", is_flag=True, default=False,
              help="Cancel running phases as soon as one fails (default: the pipeline's "
                   "fail_fast).")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print the final timeline and results as JSON on stdout (and nothing "
                   "else there; phases' own output goes to stderr).")
@click.option("-O", "--executor-option", "executor_option", multiple=True, metavar="KEY=VALUE",
              help="Pass an option to the executor; repeatable. VALUE is parsed as JSON "
                   "when it can be (4, 0.5, true), else kept as a string.")
@click.option("--workdir", type=click.Path(file_okay=True, dir_okay=True), default=None,
              metavar="DIR",
              help="Keep the run in DIR: its state (pipeline-state.json), a journal of every "
                   "transition and the results of completed phases, so that --resume can "
                   "carry it on after a crash (default: .phasewise/<pipeline name>).")
@click.option("--resume", is_flag=True, default=False,
              help="Run only what did not complete in the run kept in the work directory: "
                   "completed phases are not run again and their kept results feed their "
                   "dependants (a phase whose definition changed runs again, and what "
                   "depends on it).")
@click.option("--no-cache", "no_cache", is_flag=True, default=False,
              help="Run phases with Phase(cache=...) even if a result for the same inputs "
                   "is cached.")
@click.option("-v", "--verbose", is_flag=True, default=False,
              help="Debug output: phase tracebacks keep phasewise's own frames (sets "
                   "PHASEWISE_DEBUG=1, which executors' workers inherit), and errors of "
                   "phasewise itself (an executor that cannot start, a broken plugin) "
                   "show their full traceback.")
@click.option("--param", "param", multiple=True, metavar="KEY=VALUE",
              help="Set a run parameter (what handlers asking for `params` get); "
                   "repeatable. VALUE is parsed as JSON when it can be, else kept as a "
                   "string. A pipeline that declares Pipeline(params=...) takes only those "
                   "names.")
@click.option("--params-file", "params_file", metavar="FILE", default=None,
              help="Read run parameters from FILE.json (an object) or FILE.toml (Python "
                   "3.11+); --param overrides what it sets.")
@click.option("--dry-run", "dry_run", is_flag=True, default=False,
              help="Print what would run, what is cached and what --resume would skip, "
                   "without running anything or locking the work directory; exit 0.")
@click.option("--pause-after", "pause_after", multiple=True, metavar="NAME",
              help="A review point after phase NAME (repeatable), like Phase(review=...): "
                   "on a terminal the run waits there for Enter to go on, or q and Enter "
                   "to stop (the run ends cancelled, exit code 1, and the --resume command "
                   "that carries it on is printed).")
@click.option("--no-pause", "no_pause", is_flag=True, default=False,
              help="Never wait at review points (runs that are not on a terminal never "
                   "do).")
@click.option("--progress", type=click.Choice(["auto", "rich", "plain", "none"]),
              default="auto", show_default=True,
              help="rich: a live display redrawn in place (a row per phase with its "
                   "status, executor, worker, elapsed time, attempt and last line of "
                   "output; a bar with the time left); plain: a line as each phase starts "
                   "([2/4] Label...), retries, failures and captured output; none: only "
                   "errors and the failed phases. Each ends with a line per phase. auto: "
                   "rich when stderr is a terminal (not TERM=dumb, no NO_COLOR) and output "
                   "is captured, else plain.")
@click.option("-q", "--quiet", is_flag=True, default=False,
              help="The same as --progress none.")
@click.option("--show-output", "show_output", is_flag=True, default=False,
              help="Echo every line phases print as it comes, as 'name | line' with the "
                   "name colored per phase, so parallel output stays labelled (captures "
                   "output).")
@click.option("--tui", is_flag=True, default=False,
              help="The interactive detail view in place of the progress display: ↑/↓ "
                   "select a phase, Enter shows its output (↑/↓ scroll, g/G top/bottom, "
                   "f follow), Escape closes it, q quits (asking first while the run "
                   "goes; y stops it as Ctrl-C does). Captures output.")
@click.option("--events", "events", metavar="FILE", default=None,
              help="Write every action of the run to FILE as it happens, one JSON object "
                   "per line ({\"time\", \"type\", \"payload\"}, first run_start, last "
                   "run_finish), so another program can follow the run; - is stdout.")
def run(
    target: str,
    executor: str,
    max_workers: int | None,
    capture: bool | None,
    fail_fast: bool,
    as_json: bool,
    executor_option: tuple[str, ...],
    workdir: str | None,
    resume: bool,
    no_cache: bool,
    verbose: bool,
    param: tuple[str, ...],
    params_file: str | None,
    dry_run: bool,
    pause_after: tuple[str, ...],
    no_pause: bool,
    progress: str,
    quiet: bool,
    show_output: bool,
    tui: bool,
    events: str | None,
) -> None:
    """Run the pipeline TARGET and report each phase as it goes.

    Progress goes to stderr: "[2/4] Label..." as each phase starts, retries and
    failures as they happen, and captured output as "name | line"; then a summary with
    a line per phase in execution order ([OK], [FAIL], [SKIP], [CACHED], [CANCELLED],
    with its duration, attempts, error and warnings), and the traceback of every failed
    phase. At a review point (Phase(review=...) or --pause-after) on a terminal, Enter
    goes on and q stops the run, which ends cancelled with exit code 1 and can be carried
    on with --resume. Exit code: 0 completed, 1 failed or stopped, 2 bad input, 130
    interrupted; a closed output pipe does not change it.
    """
    from phasewise.cli.describe import no_parallel_warning
    from phasewise.cli.report import json_document
    from phasewise.cli.review import is_interactive, terminal_review
    from phasewise.cli.run import (
        EXIT_INTERRUPTED,
        choose_display,
        resume_command,
        run_pipeline,
        stdout_to_stderr,
    )

    if verbose:
        os.environ["PHASEWISE_DEBUG"] = "1"  # before anything runs: workers inherit it
    if max_workers is not None and max_workers < 1:
        raise BadInput(f"-j/--max-workers must be at least 1, got {max_workers}")
    if dry_run and as_json:
        raise BadInput("--dry-run prints what a run would do, not a run: leave out --json")
    if as_json and events == "-":
        raise BadInput("--json and --events - would both write to stdout: give --events a "
                       "file")
    options = parse_executor_options(executor_option)
    given = _given_params(params_file, param)
    stdout_is_ours = as_json or events == "-"  # then everything else printed goes to stderr
    try:
        with stdout_to_stderr() if stdout_is_ours else nullcontext():
            pipeline = _load(target)
    except KeyboardInterrupt:
        sys.exit(130)
    _check_executors(pipeline, executor, _executor_source(), verbose)
    run_params = _check_params(pipeline, given, params_file)
    _check_pause_after(pipeline, pause_after)
    place = workdir or str(_default_workdir(pipeline.name))
    if dry_run:
        _dry_run(pipeline, executor, place, run_params, resume=resume, cache=not no_cache,
                 pause_after=pause_after if not no_pause else ())
        return
    shows_output = "--tui" if tui else "--show-output" if show_output else ""
    if shows_output and capture is False:
        raise BadInput(f"{shows_output} shows what phases print by capturing it: leave out "
                       "--no-capture")
    if tui:
        _check_tui(pipeline, as_json=as_json, events=events,
                   asks=not no_pause and (bool(pause_after)
                                          or any(phase.review for phase in pipeline.phases)))
    capture_output = bool(shows_output) or (
        pipeline.capture_output if capture is None else capture)
    display = "tui" if tui else choose_display(progress, quiet=quiet, stream=sys.stderr,
                                                capture_output=capture_output)
    opening = [
        f"phasewise: running {pipeline.name!r} ({len(pipeline)} phases) on {executor!r}"
        f"{', capturing output' if capture_output else ''}"
    ]
    warning = no_parallel_warning(pipeline, max_workers)
    if warning is not None:
        opening.append(warning)
    stream = sys.stderr  # held now: inside a capturing phase sys.stderr feeds the Store
    again = "phasewise run " + shlex.join(resume_command(
        target, place, executor=executor, max_workers=max_workers,
        executor_options=executor_option, params_file=params_file, params=param,
        pause_after=pause_after))
    review = None
    if not no_pause and is_interactive(sys.stdin, stream):
        review = terminal_review(sys.stdin, stream, again)
    try:
        with _events_file(events) as events_out, \
                stdout_to_stderr() if stdout_is_ours else nullcontext(), \
                _warnings_to(stream):
            outcome = run_pipeline(
                pipeline, executor=executor, max_workers=max_workers, executor_options=options,
                capture_output=capture_output, fail_fast=True if fail_fast else None,
                progress=stream, opening=opening, workdir=place, resume=resume,
                cache=not no_cache, params=run_params, review=review,
                pause_after=pause_after, display=display, show_output=show_output,
                again=f"to carry this run on: {again}",
                events=events_out,
            )
    except PhasewiseError as exc:  # not a phase's failure: the run could not go on
        _infrastructure_failure(exc, verbose)
    try:
        if as_json:
            click.echo(json_document(outcome.result.state, outcome.result.results))
    except KeyboardInterrupt:  # Ctrl-C again while reporting: the run is over anyway
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(outcome.exit_code)


def _check_tui(pipeline: Pipeline, *, as_json: bool, events: str | None,
               asks: bool) -> None:
    """``--tui`` takes the terminal of stdin and stdout: what else would want it."""
    if as_json or events == "-":
        raise BadInput(f"--tui draws on stdout, and {'--json' if as_json else '--events -'} "
                       "would write there too: leave one out")
    if asks:
        raise BadInput("--tui cannot ask the questions of review points yet: add "
                       "--no-pause, or leave out --tui")


@contextlib.contextmanager
def _events_file(path: str | None) -> Iterator[BinaryIO | None]:
    """``--events FILE`` opened for the run (``-`` is stdout), or None."""
    if path is None:
        yield None
        return
    try:
        # "-": stdout as it is now, for the run's own stdout goes to stderr
        file = (os.fdopen(os.dup(sys.stdout.fileno()), "wb") if path == "-"
                else open(path, "wb"))  # noqa: SIM115  (closed below, after the run)
    except OSError as exc:
        raise BadInput(f"--events: cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield file
    finally:
        file.close()


@cli.command(name="list")
@click.argument("target")
def list_phases(target: str) -> None:
    """List the phases of TARGET in execution order.

    For each phase: what it depends on, whether it may run in parallel with others,
    the executor it asks for (if it overrides the run's), its weight and description.
    """
    from phasewise.cli.describe import describe_pipeline

    click.echo(describe_pipeline(_load(target)), nl=False)


@cli.command(short_help="Print the dependency graph of TARGET (Mermaid or dot).")
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid flowchart or Graphviz dot.")
@click.option("--workdir", metavar="DIR", default=None,
              help="Color each phase by its status in the run kept in DIR (the last run, "
                   "or the one in progress).")
def graph(target: str, fmt: str, workdir: str | None) -> None:
    """Print the dependency graph of TARGET as Mermaid or Graphviz dot.

    An edge runs from a dependency to its dependant; parallel phases are drawn with
    rounded corners. With --workdir, each phase is filled with the color of its status
    in that run (completed green, failed red, running blue, skipped grey, cancelled
    orange, pending light grey).
    """
    from phasewise.cli.describe import render_graph

    pipeline = _load(target)
    statuses = None
    if workdir is not None:
        ledger = _ledger(workdir, pipeline.name)
        statuses = {name: p["status"] for name, p in ledger.phases.items()}
    click.echo(render_graph(pipeline, fmt, statuses), nl=False)


@cli.command()
@click.option("--workdir", metavar="DIR", default=None,
              help="The run's work directory (default: the one under ./.phasewise).")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print the pipeline_to_timeline document of the run as JSON.")
def status(workdir: str | None, as_json: bool) -> None:
    """Show the last (or current) run kept in a work directory.

    Each phase's status, duration, attempts, cache hit and error, and whether the run
    can be resumed. It reads the state file and the journal without taking the lock, so
    it shows a run in progress as it goes.
    """
    from phasewise.cli.status import describe_status, workdir_option

    place = workdir_option(workdir)
    ledger = _ledger(str(place))
    timeline = ledger.timeline()
    if as_json:
        click.echo(json.dumps(timeline, indent=2))
    else:
        click.echo(describe_status(timeline, place, ledger.pid), nl=False)


def _ledger(workdir: str, pipeline: str | None = None) -> Any:
    """The run recorded in ``workdir`` (a ``durable.ledger.Ledger``; of ``pipeline``, if
    given); BadInput when it holds none or cannot be read."""
    from phasewise.durable.resume import load_ledger
    from phasewise.durable.workdir import Workdir

    try:
        return load_ledger(Workdir(workdir), pipeline)
    except (ValueError, PhasewiseError) as exc:
        raise BadInput(str(exc)) from None


@cli.group()
def cache() -> None:
    """List or clear the results kept for phases with Phase(cache=...)."""


@cache.command(name="list")
@click.option("--workdir", metavar="DIR", default=None,
              help="The work directory (default: the one under ./.phasewise).")
def cache_list(workdir: str | None) -> None:
    """List the cached results: phase, key, size, when stored."""
    from phasewise.cli.status import format_cache_entries

    click.echo(format_cache_entries(_result_cache(workdir).entries()), nl=False)


@cache.command(name="clear")
@click.option("--workdir", metavar="DIR", default=None,
              help="The work directory (default: the one under ./.phasewise).")
@click.option("--phase", default=None, help="Clear only this phase's results.")
def cache_clear(workdir: str | None, phase: str | None) -> None:
    """Remove cached results (all, or one phase's): those phases run next time."""
    removed = _result_cache(workdir).clear(phase)
    click.echo(f"removed {removed} cached result{'s' if removed != 1 else ''}")


def _result_cache(workdir: str | None) -> Any:
    from phasewise.cli.status import workdir_option
    from phasewise.durable.cache import ResultCache
    from phasewise.durable.workdir import Workdir

    place = Workdir(workdir_option(workdir))
    if not place.cache_dir.is_dir():
        raise BadInput(f"{place.path} holds no cache")
    try:
        return ResultCache(place.cache_dir)
    except PhasewiseError as exc:
        raise BadInput(str(exc)) from None


# -p no:NAME, `phasewise plugins` and `phasewise executors` (cli/plugin_commands.py)
register_plugin_commands(cli)
# `phasewise watch`, `report` and `mcp`, which show a kept run (cli/views.py)
register_view_commands(cli)


def main() -> None:
    """Console-script entry point."""
    from phasewise.cli.pipes import guard_std_streams

    with guard_std_streams():  # a reader that goes away does not stop the run
        try:
            cli(prog_name="phasewise")
        except SystemExit as exit_:
            if exit_.code == 130:
                # The run was interrupted and its workers are stopped. Leave now: a second
                # Ctrl-C during interpreter shutdown would otherwise end us by SIGINT.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            raise


if __name__ == "__main__":
    main()
