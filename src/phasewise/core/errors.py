"""One error hierarchy for everything phasewise raises.

::

    PhasewiseError
     ├── PipelineError          a pipeline is defined wrongly (unknown dependency, duplicate)
     │    ├── CycleError        the dependencies form a cycle; the message shows the path
     │    └── PipelineFailed    raise_for_status() on a run that did not complete
     ├── PhaseError             one phase could not produce a result (carries ``phase``)
     │    ├── PhaseTimeout      it ran past ``Phase(timeout=...)``
     │    ├── WorkerDied        the process running it died (signal or exit code)
     │    ├── SerializationError  its handler, context or result could not be pickled
     │    └── RemotePhaseError  its handler raised in another process (type, message, traceback)
     ├── WireError              a worker sent a frame that could not be decoded
     ├── ExecutorError          an executor cannot work at all (interpreter missing, cannot
     │    │                     start a process, cluster unreachable): the run stops
     │    └── BootstrapError    it would start processes while a module is being imported
     │                          (a script without a __main__ guard would multiply itself)
     ├── PluginError            plugins disagree (two register one executor name)
     │    ├── UnknownExecutorError  no installed plugin provides that executor
     │    └── ExecutorOptionsError  the executor's factory refused the options given
     ├── SagaError              a saga yielded something that is not an effect, or deadlocked
     ├── TargetError            ``phasewise run TARGET`` could not load a pipeline from TARGET
     ├── WorkdirError           a work directory cannot be used (a file, not writable, its
     │    │                     state file corrupted or another pipeline's)
     │    └── WorkdirLocked     another run holds it (the message names the process)
     └── UnsafeStoreError       state, results or cache phasewise refuses to load: another
          │                     user could have written it, and loading a pickle runs code
          └── TamperedError     a stored pickle whose HMAC does not match (changed after it
                                was written, or signed with another key)

``PhasewiseWarning`` (a ``UserWarning``) is what phasewise warns with: a result it could
not keep, a cached phase that ran uncached.

A failed phase is data (its status and error text in the Store), not an exception
escaping the runner; these types travel inside futures and are raised only where a
caller asked for them (``raise_for_status``) or where infrastructure is broken.
"""

from __future__ import annotations

__all__ = [
    "BootstrapError",
    "CycleError",
    "ExecutorError",
    "ExecutorOptionsError",
    "PhaseError",
    "PhaseTimeout",
    "PhasewiseError",
    "PhasewiseWarning",
    "PipelineError",
    "PipelineFailed",
    "PluginError",
    "RemotePhaseError",
    "SagaError",
    "SerializationError",
    "TamperedError",
    "TargetError",
    "UnknownExecutorError",
    "UnsafeStoreError",
    "WireError",
    "WorkdirError",
    "WorkdirLocked",
    "WorkerDied",
]


class PhasewiseError(Exception):
    """Root of every error phasewise raises on purpose."""


class PhasewiseWarning(UserWarning):
    """Something the user should know that does not stop the run."""


class PipelineError(PhasewiseError):
    """A pipeline's definition is invalid."""


class CycleError(PipelineError):
    """The dependency graph has a cycle; ``path`` lists it, first node repeated last."""

    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__("Circular dependency: " + " → ".join(path))


class PipelineFailed(PipelineError):
    """Raised by ``PipelineResult.raise_for_status()``; ``failures`` maps phase → error."""

    def __init__(self, pipeline: str, status: str, failures: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.status = status
        self.failures = failures
        detail = "; ".join(f"{name}: {err}" for name, err in failures.items())
        super().__init__(f"pipeline {pipeline!r} {status}" + (f" ({detail})" if detail else ""))


class PhaseError(PhasewiseError):
    """A phase could not produce a result. ``phase`` names it (may be empty)."""

    def __init__(self, message: str, phase: str = "") -> None:
        self.phase = phase
        super().__init__(message)


class PhaseTimeout(PhaseError):
    """The phase ran longer than its ``timeout``."""


class WorkerDied(PhaseError):
    """The worker process running the phase died before sending a result."""


class SerializationError(PhaseError):
    """Something that must cross a process boundary could not be pickled."""


class RemotePhaseError(PhaseError):
    """The handler raised in another process; its type, message and traceback come along."""

    def __init__(self, type_name: str, message: str, traceback: str, phase: str = "") -> None:
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = traceback
        super().__init__(f"{type_name}: {message}" if message else type_name, phase)


class WireError(PhasewiseError):
    """A frame from a worker could not be decoded."""


class ExecutorError(PhasewiseError):
    """Executor ``executor`` cannot run any phase (not one phase's fault): no retries,
    the run stops and ``Pipeline.run`` raises this. ``option`` names the executor option
    at fault, when one is."""

    def __init__(self, executor: str, detail: str, option: str | None = None) -> None:
        self.executor = executor
        self.detail = detail
        self.option = option
        super().__init__(f"executor {executor!r}: {detail}")


class BootstrapError(ExecutorError):
    """Executor ``executor`` refused to start worker processes: the code asking for them
    runs while a module is being imported (or in a worker still unpickling its task, or
    too many worker processes deep). Each worker would import that module again and start
    the pipeline again. The fix is an ``if __name__ == "__main__":`` guard."""


class PluginError(PhasewiseError):
    """The installed plugins are inconsistent."""


class UnknownExecutorError(PluginError):
    """No installed plugin provides the executor ``name``; ``available`` lists those that do."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listed = ", ".join(available) or "none"
        super().__init__(f"unknown executor {name!r}; installed executors: {listed}")


class ExecutorOptionsError(PluginError):
    """Executor ``name`` could not be created with ``options``; ``cause`` says why."""

    def __init__(self, name: str, options: dict[str, object], cause: BaseException) -> None:
        self.name = name
        self.options = options
        self.cause = cause
        super().__init__(
            f"executor {name!r} cannot be created with options {options}: "
            f"{type(cause).__name__}: {cause}"
        )


class SagaError(PhasewiseError):
    """A saga yielded something the runner does not understand, or every saga waits and
    nothing can wake one."""


class TargetError(PhasewiseError):
    """A CLI target (``file.py[:attr]`` or ``module[:attr]``) does not name one pipeline."""


class UnsafeStoreError(PhasewiseError):
    """phasewise will not load the state, result or cache file or directory ``path``: a
    user other than the current one could have written or swapped it, and unpickling it
    would run whatever code it holds. The message says why and what to do."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return type(self), (str(self), self.path)


class TamperedError(UnsafeStoreError):
    """The stored pickle ``what`` (at ``path``) fails its HMAC check: it changed after
    phasewise wrote it, or it was signed with another user's key. It is not loaded."""

    def __init__(self, message: str, path: str = "", what: str = "") -> None:
        self.what = what
        super().__init__(message, path)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return type(self), (str(self), self.path, self.what)


class WorkdirError(PhasewiseError):
    """A work directory cannot be used: it is a file or cannot be written, or its state
    file is corrupted, empty, of another schema or of another pipeline."""


class WorkdirLocked(WorkdirError):
    """Another run holds the work directory."""
