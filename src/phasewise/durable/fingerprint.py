"""A phase's definition as a digest: what must be the same for an earlier run's result of
the phase to stand in for running it again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from phasewise.core.parameters import asked_for
from phasewise.core.phase import Phase

__all__ = ["fingerprint", "fingerprints", "handler_digest", "uses_params"]


def uses_params(phase: Phase) -> bool:
    """Whether the phase's handler or its condition asks for ``params``."""
    if "params" in phase.asks:
        return True
    return phase.when is not None and "params" in asked_for(
        phase.when, phase.name, "condition", ("context", "params"))


def fingerprints(phases: Iterable[Phase],
                 params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``fingerprint`` of each phase, by name. What phases share (a handler, the same
    options) is digested once, by one ``Digester``: 10,000 phases cost little more than
    their names."""
    from phasewise.durable.digest import Digester

    digester = Digester()  # one for the run: what the handlers share is walked once
    handlers: dict[int, str] = {}
    options: dict[tuple[Any, ...], str] = {}
    out = {}
    for phase in phases:
        digest = handlers.get(id(phase.handler))
        if digest is None:
            digest = handlers[id(phase.handler)] = handler_digest(phase.handler, digester)
        key = _options_key(phase)
        described = options.get(key)
        if described is None:
            described = options[key] = _options(phase, digester)
        used = params if params and uses_params(phase) else None
        out[phase.name] = _digest(phase, described, digest, used)
    return out


def fingerprint(phase: Phase, digest: str | None = None,
                params: Mapping[str, Any] | None = None) -> str:
    """SHA-256 over the phase's name, dependencies, options (policy, timeout, executor,
    cache, error type, condition and hooks), the ``params`` it uses and its handler (its
    code, see ``handler_digest``; ``digest`` if it is known already)."""
    return _digest(phase, _options(phase), digest or handler_digest(phase.handler), params)


def _options_key(phase: Phase) -> tuple[Any, ...]:
    return (phase.policy, phase.timeout, phase.executor, phase.cache, phase.error,
            id(phase.when), id(phase.validate), id(phase.on_success), id(phase.on_failure))


def _options(phase: Phase, digester: Any = None) -> str:
    def code(fn: Any) -> str:
        return "-" if fn is None else handler_digest(fn, digester)

    return "\0".join((repr(phase.policy), repr(phase.timeout), repr(phase.executor),
                      repr(phase.cache), repr(phase.error), code(phase.when),
                      code(phase.validate), code(phase.on_success), code(phase.on_failure)))


def _digest(phase: Phase, options: str, handler: str,
            params: Mapping[str, Any] | None) -> str:
    text = "\0".join((phase.name, repr(sorted(set(phase.depends_on))), options,
                      repr(sorted((params or {}).items(), key=repr)), handler))
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def handler_digest(handler: Any, digester: Any = None) -> str:
    """A digest of what ``handler`` runs: its code and that of the user's own functions
    and classes it calls, a ``functools.partial``'s function and arguments
    (``digest.code_digest``)."""
    from phasewise.durable.digest import code_digest

    return str(code_digest(handler, digester))
