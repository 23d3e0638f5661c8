"""Pickling a task for another process, and saying what would not pickle; pickling its
result on the way back.

The handler and its arguments (context, params, workdir) are pickled separately: a
handler's bytes are kept per handler object (``core.task.pickled_handler``: 2,000 phases
sharing one handler, and the run's check that it pickles, pickle it once), and workers
cache the unpickled handler per bytes in turn. Functions from ``__main__`` or from a
``phasewise run`` target are pickled by value, which is the expensive case.

A result is pickled with protocol 5, its large buffers out-of-band (PEP 574): a numpy
array's memory is not copied into the pickle but sent as it is, and read in the parent
into the memory the unpickled array then uses (see ``phasewise.core.wire``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from phasewise.core import framing, wire
from phasewise.core.errors import SerializationError
from phasewise.core.task import Task, pickled_handler
from phasewise.core.task import dumps as _dumps

__all__ = ["dump_result", "load_result", "pickle_task", "run_frame"]

def pickle_task(task: Task) -> tuple[bytes, bytes] | SerializationError:
    """``(handler bytes, arguments bytes)`` — empty arguments bytes for "none" — or an
    error naming the phase and the object that would not pickle."""
    try:
        handler = pickled_handler(task.handler)
    except Exception as exc:
        return _error(task, f"handler {task.handler!r}", exc)
    arguments = task.arguments
    if not arguments:
        return handler, b""
    try:
        return handler, _dumps(arguments)
    except Exception as exc:
        return _error(task, _culprit(arguments), exc)


def _culprit(arguments: dict[str, object]) -> str:
    """Which of a task's arguments would not pickle, in words."""
    context = arguments.get("context")
    if isinstance(context, Mapping):
        for key, value in context.items():
            try:
                _dumps(value)
            except Exception:
                kind = type(value).__name__
                return f"context[{key!r}] (the result of phase {key!r}, a {kind})"
    for name, value in arguments.items():
        try:
            _dumps(value)
        except Exception:
            return name
    return "arguments"


def run_frame(task: Task) -> bytes | SerializationError:
    """The framed ``wire.Run`` message that sends ``task`` to a worker, or the error that
    says what in it would not pickle."""
    pickled = pickle_task(task)
    if isinstance(pickled, SerializationError):
        return pickled
    return wire.encode(wire.Run(task.phase, *pickled, task.capture_output))


def _error(task: Task, culprit: str, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"phase {task.phase!r} cannot be sent to a worker: its {culprit} cannot be "
        f"pickled: {type(exc).__name__}: {exc}",
        task.phase,
    )


def dump_result(value: Any) -> wire.Result:
    """The Result message carrying ``value``: its pickle, and the pickle's out-of-band
    buffers of at least ``framing.LARGE_FRAME`` bytes (smaller ones stay in the pickle, where
    they cost less than a buffer of their own). The buffers are views of ``value``'s
    memory: send the message before ``value`` changes."""
    import cloudpickle

    buffers: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        """False takes ``buffer`` out of band; True leaves it in the pickle."""
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: the pickle copies it in, as without protocol 5
            return True
        if view.nbytes < framing.LARGE_FRAME:
            return True
        buffers.append(view)
        return False

    payload = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    return wire.Result(payload, tuple(buffers))


def load_result(message: wire.Result) -> Any:
    """The value a Result message carries."""
    return pickle.loads(message.payload, buffers=message.buffers)
