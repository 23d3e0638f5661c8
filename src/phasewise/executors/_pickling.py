"""Say which part of a task could not be pickled, and why."""

from __future__ import annotations

from phasewise.core.errors import SerializationError
from phasewise.core.task import Task

__all__ = ["payload_or_error"]


def payload_or_error(task: Task) -> bytes | SerializationError:
    """The task's payload, or an error naming the phase and the object that would not pickle."""
    try:
        return task.payload
    except Exception as exc:
        import cloudpickle

        culprit = f"handler {task.handler!r}"
        try:
            cloudpickle.dumps(task.handler)
        except Exception:
            pass
        else:
            for key, value in (task.context or {}).items():
                try:
                    cloudpickle.dumps(value)
                except Exception:
                    kind = type(value).__name__
                    culprit = f"context[{key!r}] (the result of phase {key!r}, a {kind})"
                    break
        return SerializationError(
            f"phase {task.phase!r} cannot be sent to a worker: its {culprit} cannot be "
            f"pickled: {type(exc).__name__}: {exc}",
            task.phase,
        )
