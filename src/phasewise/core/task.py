"""Task: one attempt of one phase, as an executor receives it."""

from __future__ import annotations

import functools
import io
import types
import weakref
from collections import ChainMap
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar

__all__ = ["Task", "call_handler", "dumps", "pickled_handler"]


def call_handler(handler: Callable[..., Any], context: Mapping[str, Any] | None) -> Any:
    """Call ``handler``, passing ``context=`` when the phase asked for it (context not None)."""
    if context is None:
        return handler()
    return handler(context=dict(context))


class Task:
    """Everything needed to run one attempt of a phase, here or anywhere phasewise is installed.

    In-process executors call ``run()``. Executors that cross a process boundary send
    ``payload`` — cloudpickled bytes of the handler and its context, made on first use —
    and call ``Task.run_payload(payload)`` on the other side.
    """

    __slots__ = ("__dict__", "attempt", "capture_output", "context", "handler", "phase", "timeout")

    def __init__(
        self,
        phase: str,
        handler: Callable[..., Any],
        context: Mapping[str, Any] | None = None,
        *,
        attempt: int = 1,
        capture_output: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.phase = phase
        self.handler = handler
        self.context = context
        self.attempt = attempt
        self.capture_output = capture_output
        self.timeout = timeout

    def run(self) -> Any:
        return call_handler(self.handler, self.context)

    @cached_property
    def payload(self) -> bytes:
        """cloudpickle of ``(handler, context)``; raises whatever pickling raises."""
        return dumps((self.handler, self.context))

    @staticmethod
    def run_payload(payload: bytes) -> Any:
        """Run the task whose ``payload`` this is (in another process, say): what ``run()``
        would return, or what it would raise."""
        import cloudpickle

        handler, context = cloudpickle.loads(payload)
        return call_handler(handler, context)

    def __repr__(self) -> str:
        return f"Task(phase={self.phase!r}, attempt={self.attempt})"


def dumps(obj: Any) -> bytes:
    """cloudpickle ``obj`` (protocol 5), keeping the file names of code pickled by value."""
    buffer = io.BytesIO()
    _pickler_class()(buffer, protocol=5).dump(obj)
    return buffer.getvalue()


_handler_bytes: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def pickled_handler(handler: Any) -> bytes:
    """``dumps(handler)``, kept per handler object: 2,000 phases sharing a handler, and the
    run's check that it pickles before any phase starts, pickle it once."""
    try:
        cached = _handler_bytes.get(handler)
    except TypeError:  # not weak-referenceable or not hashable: no cache
        return dumps(handler)
    if cached is None:
        cached = dumps(handler)
        try:
            _handler_bytes[handler] = cached
        except TypeError:
            pass
    return cached


@functools.cache
def _pickler_class() -> type:
    """cloudpickle's Pickler, except that code pickled by value keeps its file name.

    cloudpickle 3.1.3 names such code ``<dynamic-code>``, so the traceback of a handler
    defined in the user's script would say ``File "<dynamic-code>"`` with no source line
    where it should point at the script. Code is reduced as cloudpickle does it, with
    the real file name put back (a no-op for versions that keep it).
    """
    import cloudpickle

    reduce_code = cloudpickle.Pickler.dispatch_table[types.CodeType]

    def reduce_keeping_filename(code: types.CodeType) -> Any:
        constructor, args, *rest = reduce_code(code)
        args = tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)
        return (constructor, args, *rest)

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
            {types.CodeType: reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table)

    return Pickler
