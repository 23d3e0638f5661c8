"""The ``phasewise`` command: run, list, graph, executors.

Exit codes: 0 the pipeline completed, 1 it failed, 2 bad input (a usage error, printed
as one short message without a traceback), 130 interrupted with Ctrl-C. A reader that
goes away (``phasewise run x.py | head``) does not change the exit code (cli/pipes.py).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import nullcontext
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from phasewise import __version__
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

EXIT_USAGE = 2


class BadInput(click.ClickException):
    """Bad input from the user: ``Error: <message>`` on stderr, exit code 2, no traceback."""

    exit_code = EXIT_USAGE


def _plugin_failure(exc: PluginError, verbose: bool = False) -> NoReturn:
    if isinstance(exc, UnknownExecutorError):
        raise BadInput(str(exc)) from None
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    raise click.ClickException(f"plugins: {exc}") from None  # exit 1: the install is broken


def _infrastructure_failure(exc: PhasewiseError, verbose: bool) -> NoReturn:
    """One ``Error:`` line for an error ``Pipeline.run`` raised (not a phase's failure);
    with ``-v`` its traceback first."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, (ExecutorError, ExecutorOptionsError)):
        # the executor cannot work as asked (bad option, interpreter missing): bad input
        raise BadInput(str(exc)) from None
    if isinstance(exc, PluginError):
        _plugin_failure(exc)
    hint = "" if verbose else " (run with -v for the traceback)"
    raise click.ClickException(f"{type(exc).__name__}: {exc}{hint}") from None


def _load(target: str) -> Pipeline:
    from phasewise.cli.target import load_pipeline

    try:
        return load_pipeline(target)
    except TargetError as exc:
        raise BadInput(str(exc)) from None


def parse_executor_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as keyword arguments; a VALUE that parses as JSON becomes that
    value (``4`` → 4, ``0.5`` → 0.5, ``true`` → True), any other VALUE stays a string."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise BadInput(
                f"-O/--executor-option expects KEY=VALUE with KEY a Python identifier, "
                f"got {item!r}"
            )
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


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
@click.option("-v", "--verbose", is_flag=True, default=False,
              help="Debug output: phase tracebacks keep phasewise's own frames (sets "
                   "PHASEWISE_DEBUG=1, which executors' workers inherit), and errors of "
                   "phasewise itself (an executor that cannot start, a broken plugin) "
                   "show their full traceback.")
def run(
    target: str,
    executor: str,
    max_workers: int | None,
    capture: bool | None,
    fail_fast: bool,
    as_json: bool,
    executor_option: tuple[str, ...],
    verbose: bool,
) -> None:
    """Run the pipeline TARGET and report each phase as it goes.

    Progress (one line per phase transition, and captured output) goes to stderr,
    then a summary table with each phase's status, duration, attempts and error, in
    execution order, and the traceback of every failed phase. Exit code: 0 completed,
    1 failed, 2 bad input, 130 interrupted; a closed output pipe does not change it.
    """
    from phasewise.cli.describe import no_parallel_warning
    from phasewise.cli.report import format_summary, json_document
    from phasewise.cli.run import EXIT_INTERRUPTED, run_pipeline, stdout_to_stderr

    if verbose:
        os.environ["PHASEWISE_DEBUG"] = "1"  # before anything runs: workers inherit it
    if max_workers is not None and max_workers < 1:
        raise BadInput(f"-j/--max-workers must be at least 1, got {max_workers}")
    options = parse_executor_options(executor_option)
    try:
        pipeline = _load(target)
    except KeyboardInterrupt:
        sys.exit(130)
    _check_executors(pipeline, executor, _executor_source(), verbose)
    capture_output = pipeline.capture_output if capture is None else capture
    opening = [
        f"phasewise: running {pipeline.name!r} ({len(pipeline)} phases) on {executor!r}"
        f"{', capturing output' if capture_output else ''}"
    ]
    warning = no_parallel_warning(pipeline, max_workers)
    if warning is not None:
        opening.append(warning)
    progress = sys.stderr  # held now: inside a capturing phase sys.stderr feeds the Store
    try:
        with stdout_to_stderr() if as_json else nullcontext():
            outcome = run_pipeline(
                pipeline, executor=executor, max_workers=max_workers, executor_options=options,
                capture_output=capture_output, fail_fast=True if fail_fast else None,
                progress=progress, opening=opening,
            )
    except PhasewiseError as exc:  # not a phase's failure: the run could not go on
        _infrastructure_failure(exc, verbose)
    result = outcome.result
    summary = format_summary(result.state, pipeline.execution_order(),
                             interrupted=outcome.interrupted)
    try:
        progress.write("\n" + summary)
        progress.flush()
        if as_json:
            click.echo(json_document(result.state, result.results))
    except KeyboardInterrupt:  # Ctrl-C again while reporting: the run is over anyway
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(outcome.exit_code)


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
def graph(target: str, fmt: str) -> None:
    """Print the dependency graph of TARGET as Mermaid or Graphviz dot.

    An edge runs from a dependency to its dependant; parallel phases are drawn with
    rounded corners.
    """
    from phasewise.cli.describe import render_graph

    click.echo(render_graph(_load(target), fmt), nl=False)


@cli.command()
def executors() -> None:
    """List the installed executors.

    For each: its name (for --executor), the distribution that provides it, and what
    it does. Plugins add executors through the `phasewise` entry-point group; see
    docs/plugins.md.
    """
    from phasewise.cli.describe import describe_executors
    from phasewise.plugins.manager import executor_registry

    try:
        entries = executor_registry().entries()
    except PluginError as exc:
        _plugin_failure(exc)
    click.echo(describe_executors(entries), nl=False)


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
