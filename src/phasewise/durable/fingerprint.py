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
    """``fingerprint`` of each phase, by name; a handler shared by many phases is
    digested once. ``params`` count for the phases that ask for them."""
    digests: dict[int, str] = {}
    out = {}
    for phase in phases:
        digest = digests.get(id(phase.handler))
        if digest is None:
            digest = digests[id(phase.handler)] = handler_digest(phase.handler)
        out[phase.name] = fingerprint(phase, digest,
                                      params if params and uses_params(phase) else None)
    return out


def fingerprint(phase: Phase, digest: str | None = None,
                params: Mapping[str, Any] | None = None) -> str:
    """SHA-256 over the phase's handler (its code, see ``handler_digest``; ``digest`` if
    it is known already), dependencies, options and the ``params`` it uses."""
    h = hashlib.sha256()
    when = handler_digest(phase.when) if phase.when is not None else ""
    hooks = "".join(handler_digest(f) if f is not None else "-"
                    for f in (phase.validate, phase.on_success, phase.on_failure))
    for part in (phase.name, repr(sorted(set(phase.depends_on))), repr(phase.policy),
                 repr(phase.timeout), repr(phase.executor), repr(phase.cache), when, hooks,
                 repr(phase.error), repr(sorted((params or {}).items(), key=repr)),
                 digest or handler_digest(phase.handler)):
        h.update(part.encode("utf-8", "backslashreplace"))
        h.update(b"\0")
    return h.hexdigest()


def handler_digest(handler: Any) -> str:
    """A digest of what ``handler`` runs: its code and that of the user's own functions
    and classes it calls, a ``functools.partial``'s function and arguments
    (``digest.code_digest``)."""
    from phasewise.durable.digest import code_digest

    return str(code_digest(handler))
