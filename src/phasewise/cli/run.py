"""Running a pipeline for ``phasewise run``: Store, reporter, plugin hooks, Ctrl-C.

::

    Store(pipeline.build_reducer())
      ├─ reporter (store.observe) ──▶ opening lines at @@PIPELINE_START, then progress
      │                               lines, on the stream it was given
      ├─ plugins' listeners   (phasewise_run_start receives the store)
      └─ phasewise_action(pipeline, action, state)   (if any plugin implements it)
    pipeline.run(store=store, ...)  ─▶  PipelineResult (or KeyboardInterrupt)
    phasewise_run_finish(result)    ─▶  summary, exit code
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from phasewise.cli.report import ProgressReporter
from phasewise.core.model import Pipeline, PipelineResult
from phasewise.core.store import Store

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "RunOutcome",
    "run_pipeline",
    "stdout_to_stderr",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a CLI run ended: the result (built from the Store if interrupted)."""

    result: PipelineResult
    interrupted: bool

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.result.ok else EXIT_FAILED


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
) -> RunOutcome:
    """Run ``pipeline`` with live progress on ``progress`` and the run hooks around it.

    ``opening`` lines go to ``progress`` when the run starts (``@@PIPELINE_START``), not
    before: a run whose executors refuse their options prints only its error.

    Ctrl-C does not escape: ``Pipeline.run`` cancels the run and re-raises
    KeyboardInterrupt, and the outcome says ``interrupted``.
    """
    from phasewise.plugins.manager import plugin_manager

    reporter = ProgressReporter(progress, show_logs=capture_output, opening=opening)
    store = Store(pipeline.build_reducer())
    reporter.attach(store)
    hook = plugin_manager().hook
    hook.phasewise_run_start(pipeline=pipeline, store=store, executor=executor)
    if hook.phasewise_action.get_hookimpls():  # a hook call per action only if wanted
        store.observe(
            lambda action: hook.phasewise_action(pipeline=pipeline, action=action,
                                                 state=store.state)
        )
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
        )
    except KeyboardInterrupt:
        interrupted = True
        result = PipelineResult.from_state(store.state, results)
    except BaseException:
        hook.phasewise_run_finish(
            pipeline=pipeline, result=PipelineResult.from_state(store.state, results)
        )
        raise
    hook.phasewise_run_finish(pipeline=pipeline, result=result)
    return RunOutcome(result, interrupted)


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
