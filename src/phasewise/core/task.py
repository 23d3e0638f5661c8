"""Task: one attempt of one phase, as an executor receives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

__all__ = ["Task", "call_handler"]


def call_handler(handler: Callable[..., Any], context: Mapping[str, Any] | None) -> Any:
    """Call ``handler``, passing ``context=`` when the phase asked for it (context not None)."""
    if context is None:
        return handler()
    return handler(context=dict(context))


class Task:
    """Everything needed to run one attempt of a phase, here or anywhere phasewise is installed.

    In-process executors call ``run()``. Executors that cross a process boundary send
    ``payload`` — cloudpickled bytes of the handler and its context, made on first use —
    and the worker calls ``run_payload``.
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
        import cloudpickle

        return cloudpickle.dumps((self.handler, self.context), protocol=5)

    def __repr__(self) -> str:
        return f"Task(phase={self.phase!r}, attempt={self.attempt})"
