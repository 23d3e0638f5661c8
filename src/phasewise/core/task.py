"""Task: one attempt of one phase, as an executor receives it."""

from __future__ import annotations

import functools
import io
import threading
import types
import weakref
from collections import ChainMap
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar

__all__ = ["Remote", "Task", "call_handler", "dumps", "handler_traceback", "pickled_handler"]


def call_handler(handler: Callable[..., Any], arguments: Mapping[str, Any] | None) -> Any:
    """Call ``handler`` with ``arguments`` (what it asked for by parameter name: ``context``,
    ``params``, ``workdir``) as keyword arguments.

    ``handler_traceback`` shows a handler's traceback from the frame below this one."""
    if not arguments:
        return handler()
    return handler(**arguments)


def handler_traceback(exc: BaseException) -> str:
    """``exc``'s formatted traceback from the handler's frame down, without the frames of
    phasewise and the executor above it (``call_handler`` and whatever called it), so
    that every executor shows the same. ``PHASEWISE_DEBUG=1`` keeps them all."""
    import os
    import traceback

    tb = exc.__traceback__
    if not os.environ.get("PHASEWISE_DEBUG"):
        entry, below_caller = tb, None
        while entry is not None:
            if entry.tb_frame.f_code is call_handler.__code__:
                below_caller = entry.tb_next
            entry = entry.tb_next
        if below_caller is not None:
            tb = below_caller
    return "".join(traceback.format_exception(type(exc), exc, tb))


class Task:
    """Everything needed to run one attempt of a phase, here or anywhere phasewise is installed.

    In-process executors call ``run()``. Executors that cross a process boundary send
    ``payload`` (bytes) and run it on the other side with
    ``phasewise.executors.run_payload(payload, emit)``, which also captures the task's
    output and streams it; ``Task.run_payload(payload)`` is the bare version.
    """

    __slots__ = ("__dict__", "attempt", "capture_output", "context", "handler", "params", "phase",
                 "resources", "timeout", "workdir")

    def __init__(
        self,
        phase: str,
        handler: Callable[..., Any],
        context: Mapping[str, Any] | None = None,
        *,
        attempt: int = 1,
        capture_output: bool = False,
        timeout: float | None = None,
        params: Mapping[str, Any] | None = None,
        workdir: Any = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        self.phase = phase
        self.handler = handler
        self.context = context
        self.params = params
        self.workdir = workdir
        self.attempt = attempt
        self.capture_output = capture_output
        self.timeout = timeout
        self.resources = resources
        """``Phase.resources``: what the phase needs of a cluster worker (``{"GPU": 1}``).
        The dask executor asks dask for a worker that has them; the others ignore them."""

    @property
    def arguments(self) -> dict[str, Any]:
        """What the handler is called with: ``context``, ``params`` and ``workdir``, those
        of them the phase asked for (None: not asked)."""
        return {name: value for name, value in (("context", self.context),
                                                ("params", self.params),
                                                ("workdir", self.workdir))
                if value is not None}

    def run(self) -> Any:
        return call_handler(self.handler, self.arguments)

    @cached_property
    def payload(self) -> bytes:
        """What another process needs to run this task, made on first use: a
        ``wire.Prepare`` frame (this process's import path, see ``core.bootstrap``) and a
        ``wire.Run`` frame (the cloudpickled handler and its arguments). Raises whatever
        pickling raises."""
        from phasewise.core import bootstrap, wire

        arguments = self.arguments
        pickled = dumps(arguments) if arguments else b""
        run = wire.Run(self.phase, pickled_handler(self.handler), pickled, self.capture_output)
        return wire.encode(bootstrap.prepare_message()) + wire.encode(run)

    @staticmethod
    def run_payload(payload: bytes) -> Any:
        """Run the task whose ``payload`` this is (in another process, say): take the
        parent's import path, unpickle, call. Returns what ``run()`` would return, raises
        what it would raise. It captures nothing: a worker process runs payloads with
        ``phasewise.executors.run_payload``, which captures output as the task asks and
        returns a reply to send back."""
        import cloudpickle

        from phasewise.core import bootstrap

        run = bootstrap.prepared_run(payload)
        with bootstrap.unpickling(run.phase):
            handler = cloudpickle.loads(run.handler)
            arguments = cloudpickle.loads(run.arguments) if run.arguments else None
        return call_handler(handler, arguments)

    def __repr__(self) -> str:
        return f"Task(phase={self.phase!r}, attempt={self.attempt})"


class Remote:
    """A phase's result that its executor kept where the phase ran (a cluster's memory)
    instead of sending it here: what an executor's future may resolve to in place of the
    value.

    The run passes it, as it is, in the context of a later phase on the same executor
    (``holder``), which hands the phase the value where it lives (``ref`` is the
    executor's own handle on it: a dask future). Everything else in this process — a
    phase on another executor, a ``when`` condition, a cache, ``validate``, the hooks,
    the run's results at the end — gets ``fetch()``: the value, brought here once.
    Pickled, a Remote is its value (so a work directory saves the value).
    """

    __slots__ = ("_fetch", "_lock", "_value", "holder", "nbytes", "phase", "ref")

    def __init__(self, phase: str, holder: object, fetch: Callable[[], Any], ref: Any = None,
                 nbytes: int = 0) -> None:
        self.phase, self.holder, self.ref, self.nbytes = phase, holder, ref, nbytes
        self._fetch: Callable[[], Any] | None = fetch
        self._value: Any = None
        self._lock = threading.Lock()

    def fetch(self) -> Any:
        """The value, fetched on the first call (which raises what fetching raises)."""
        with self._lock:
            if self._fetch is not None:
                self._value = self._fetch()
                self._fetch = None
            return self._value

    def __reduce__(self) -> Any:
        return _same, (self.fetch(),)

    def __repr__(self) -> str:
        return (f"<result of phase {self.phase!r}, {self.nbytes} bytes, kept by "
                f"{type(self.holder).__name__}>")


def _same(value: Any) -> Any:
    return value


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

    class Pickler(cloudpickle.Pickler):
        dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
            {types.CodeType: reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table)

    return Pickler
