"""What a handler asks for, by the names of its parameters.

A handler (or a ``when`` predicate) says what it needs by naming a parameter: ``context``
(its dependencies' results), ``params`` (the run's parameters) or ``workdir`` (its own
folder). Any other parameter must have a default: phasewise would not know what to pass.
Worked out once per function's code, so that 10,000 phases sharing a handler cost one.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Collection
from typing import Any

from phasewise.core.errors import PipelineError

__all__ = ["FILLED", "asked_for"]

FILLED = ("context", "params", "workdir")
"""The parameter names phasewise fills."""

_by_code: dict[types.CodeType, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def asked_for(fn: Callable[..., Any], phase: str, what: str = "handler",
              fillable: Collection[str] = FILLED) -> tuple[str, ...]:
    """The names among ``fillable`` that ``fn`` takes, in ``FILLED``'s order;
    ``PipelineError`` naming the phase and the parameter for one phasewise cannot fill."""
    names, required = _parameters(fn)
    unknown = [n for n in required if n not in fillable]
    if unknown:
        allowed = ", ".join(repr(n) for n in fillable)
        raise PipelineError(
            f"phase {phase!r}: its {what} {_name(fn)} has a parameter {unknown[0]!r} "
            f"phasewise cannot fill; name it {allowed} to be given that, or give it a "
            "default value")
    return tuple(n for n in FILLED if n in fillable and n in names)


def _parameters(fn: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every named parameter, those without a default)."""
    if isinstance(fn, types.FunctionType) and not hasattr(fn, "__wrapped__"):
        code = fn.__code__
        known = _by_code.get(code)
        if known is None or fn.__defaults__ or fn.__kwdefaults__:
            known = _from_code(fn)
            if not (fn.__defaults__ or fn.__kwdefaults__):
                _by_code[code] = known
        return known
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return (), ()
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY,
             inspect.Parameter.POSITIONAL_ONLY)
    params = [p for p in signature.parameters.values() if p.kind in plain]
    return (tuple(p.name for p in params),
            tuple(p.name for p in params if p.default is inspect.Parameter.empty))


def _from_code(fn: types.FunctionType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    code = fn.__code__
    positional = code.co_varnames[: code.co_argcount]
    keyword = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    with_default = len(fn.__defaults__ or ())
    required = list(positional[: len(positional) - with_default])
    required += [n for n in keyword if n not in (fn.__kwdefaults__ or {})]
    return tuple(positional) + tuple(keyword), tuple(required)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
