"""Running a pipeline for ``phasewise run``: the reporters, Ctrl-C, the exit code.

::

    plugin manager ◀── register the display: ProgressReporter (plain lines, then the
                       summary), LiveDisplay (plugins/live.py, on a terminal) or the
                       detail view (cli/tui/reporter.py, --tui)
                   ◀── register EventsReporter   (--events FILE)
    pipeline.run(store=store, ...)   ─▶  PipelineResult (or KeyboardInterrupt)
      └─ Pipeline.run shows the run to every plugin's run hooks, the two above and any
         third party's alike (plugins/run_hooks.py)
    unregister the reporters          ─▶  RunOutcome: result, interrupted, exit code
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from phasewise.core.model import Pipeline, PipelineResult
from phasewise.core.store import Store
from phasewise.plugins.reporters import EventsReporter, ProgressReporter

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "RunOutcome",
    "choose_display",
    "resume_command",
    "run_pipeline",
    "stdout_to_stderr",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a CLI run ended: the result (built from the Store if interrupted), and the
    phases a resumed run kept from the run it carried on."""

    result: PipelineResult
    interrupted: bool
    resumed: frozenset[str] = frozenset()

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.result.ok else EXIT_FAILED


def choose_display(progress: str, *, quiet: bool, stream: TextIO,
                   capture_output: bool) -> str:
    """What ``--progress`` (``-q``) means for this terminal: ``rich``, ``plain`` or
    ``none``. ``auto`` is the live display only where it can be drawn (``stream`` is a
    terminal that is not ``TERM=dumb``, ``NO_COLOR`` is unset) and where nothing else
    writes to that terminal meanwhile (the phases' output is captured)."""
    if quiet or progress == "none":
        return "none"
    if progress != "auto":
        return progress
    drawable = (_is_terminal(stream) and os.environ.get("TERM") != "dumb"
                and "NO_COLOR" not in os.environ)
    return "rich" if drawable and capture_output else "plain"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_pipeline(
    pipeline: Pipeline,
    *,
    executor: str,
    max_workers: int | None,
    executor_options: Mapping[str, Any],
    capture_output: bool,
    fail_fast: bool | None,
    progress: TextIO,
    opening: Sequence[str] = (),
    workdir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    cache: bool = True,
    params: Mapping[str, Any] | None = None,
    review: Callable[[str, str, Path | None], bool] | None = None,
    pause_after: Iterable[str] = (),
    display: str = "plain",
    show_output: bool = False,
    again: str = "",
    events: IO[bytes] | None = None,
) -> RunOutcome:
    """Run ``pipeline`` with live progress and the summary on ``progress``.

    ``opening`` lines go to ``progress`` when the run starts (``@@PIPELINE_START``), not
    before: a run whose executors refuse their options prints only its error.
    ``display`` (``choose_display``): ``rich`` draws the live display, ``plain`` writes
    progress lines, ``none`` no progress and only the failed phases in the summary.
    ``show_output`` echoes every captured line as it comes. ``again`` follows the
    summary of a run that did not complete (how to carry it on). ``events``: every
    action is written there as a JSON line. ``params``, ``review`` and ``pause_after``
    are ``Pipeline.run``'s.

    Ctrl-C does not escape: ``Pipeline.run`` cancels the run and re-raises
    KeyboardInterrupt, and the outcome says ``interrupted``.
    """
    from phasewise.plugins.manager import plugin_manager

    reporter: ProgressReporter
    view: Any = None
    if display == "tui":
        from phasewise.cli.tui import DetailViewReporter

        view = DetailViewReporter.for_terminal()
        # the summary of what failed, once the view has closed (it is called after it)
        reporter = ProgressReporter(progress, show_logs=False, quiet=True, again=again)
    elif display == "rich":
        from phasewise.plugins.live import LiveDisplay

        live = LiveDisplay(progress, show_output=show_output, opening=opening,
                           again=again, color="NO_COLOR" not in os.environ)
        if review is not None:
            review = _paused_for(review, live)
        reporter = live
    else:
        reporter = ProgressReporter(progress, show_logs=capture_output, opening=opening,
                                    quiet=display == "none", again=again)
    reporters: list[Any] = [reporter]
    if events is not None:
        reporters.append(EventsReporter(events))
    if view is not None:
        reporters.append(view)  # registered last: its run_finish, which waits for q, first
    pm = plugin_manager()
    for plugin in reporters:
        pm.register(plugin)
    store = Store(pipeline.build_reducer())
    interrupted = False
    results: dict[str, Any] = {}
    try:
        result = pipeline.run(
            executor=executor,
            max_workers=max_workers,
            store=store,
            executor_options=dict(executor_options),
            capture_output=capture_output,
            fail_fast=fail_fast,
            results=results,
            workdir=workdir,
            resume=resume,
            cache=cache,
            params=params,
            review=review,
            pause_after=tuple(pause_after),
        )
    except KeyboardInterrupt:
        interrupted = True
        result = PipelineResult.from_state(store.state, results, interrupted=True)
    finally:
        for plugin in reporters:
            if pm.is_registered(plugin):
                pm.unregister(plugin)
    return RunOutcome(result, interrupted, frozenset(reporter.resumed))


def _paused_for(review: Callable[[str, str, Path | None], bool],
                display: Any) -> Callable[[str, str, Path | None], bool]:
    """``review``, asking with the live display out of the way."""

    def asking(phase: str, message: str, folder: Path | None) -> bool:
        with display.paused():
            return review(phase, message, folder)

    return asking


def resume_command(
    target: str, workdir: str, *, executor: str = "thread", max_workers: int | None = None,
    executor_options: Sequence[str] = (), params_file: str | None = None,
    params: Sequence[str] = (), pause_after: Sequence[str] = (),
) -> list[str]:
    """The arguments of ``phasewise run`` that carry a run on with ``--resume``: the same
    target, executor, options and parameters (a parameter that changed would run again
    the phases that use it), and the same work directory."""
    args = [target]
    if executor != "thread":
        args += ["-e", executor]
    if max_workers is not None:
        args += ["-j", str(max_workers)]
    for item in executor_options:
        args += ["-O", item]
    if params_file is not None:
        args += ["--params-file", params_file]
    for item in params:
        args += ["--param", item]
    for name in pause_after:
        args += ["--pause-after", name]
    return [*args, "--workdir", workdir, "--resume"]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout during the block to stderr instead.

    For ``--json``, whose document must be all there is on stdout. Both ``sys.stdout``
    and, when stdout is a real file descriptor, the descriptor itself are redirected,
    so output from C code and child processes is moved too.
    """
    sys.stdout.flush()
    saved: tuple[int, int] | None = None
    try:
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    else:
        saved = (out_fd, os.dup(out_fd))
        os.dup2(err_fd, out_fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            out_fd, copy = saved
            os.dup2(copy, out_fd)
            os.close(copy)
