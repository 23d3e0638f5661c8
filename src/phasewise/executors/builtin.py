"""The plugin that registers phasewise's own executors (entry point ``builtin``)."""

from __future__ import annotations

from typing import Any

from phasewise.plugins.markers import hookimpl

__all__ = ["phasewise_executors"]


def _inline(**options: Any) -> Any:
    """Runs each phase in the caller's thread, one at a time (debugging, tests)."""
    from phasewise.executors.inline import InlineExecutor

    return InlineExecutor(**options)


def _thread(**options: Any) -> Any:
    """A pool of threads in this process (I/O-bound phases; a thread cannot be killed)."""
    from phasewise.executors.thread import ThreadExecutor

    return ThreadExecutor(**options)


def _process(**options: Any) -> Any:
    """A pool of worker processes for CPU-bound phases (options: start_method=, kill_grace=)."""
    from phasewise.executors.process import ProcessExecutor

    return ProcessExecutor(**options)


def _subprocess(**options: Any) -> Any:
    """A fresh Python interpreter for every phase (options: python=, env=, cwd=)."""
    from phasewise.executors.subprocess import SubprocessExecutor

    return SubprocessExecutor(**options)


def _dask(**options: Any) -> Any:
    """A dask.distributed cluster (options: address=, n_workers=, threads_per_worker=)."""
    try:
        from phasewise.executors.dask import DaskExecutor
    except ImportError as exc:  # pragma: no cover - the module itself imports no dask
        from phasewise.core.errors import ExecutorError

        raise ExecutorError("dask", f"install phasewise[dask]: {exc}") from exc
    return DaskExecutor(**options)


def _dask_entry() -> Any:
    """``_dask``, or where the registry can mark an executor unavailable and distributed
    is not installed, that mark (the factory itself raises the same otherwise)."""
    try:
        from phasewise.plugins.registry import Unavailable
    except ImportError:
        return _dask
    return Unavailable.unless_importable("distributed", "pip install 'phasewise[dask]'") or _dask


@hookimpl
def phasewise_executors() -> dict[str, Any]:
    return {"inline": _inline, "thread": _thread, "process": _process, "subprocess": _subprocess,
            "dask": _dask_entry()}
