"""A phase's definition as a digest: what must be the same for an earlier run's result of
the phase to stand in for running it again."""

from __future__ import annotations

import hashlib
from typing import Any

from phasewise.core.phase import Phase

__all__ = ["fingerprint", "handler_digest"]


def fingerprint(phase: Phase) -> str:
    """SHA-256 over the phase's handler (its code, see ``handler_digest``), dependencies
    and options."""
    h = hashlib.sha256()
    for part in (phase.name, repr(sorted(set(phase.depends_on))), repr(phase.policy),
                 repr(phase.timeout), repr(phase.executor), repr(phase.cache),
                 handler_digest(phase.handler)):
        h.update(part.encode("utf-8", "backslashreplace"))
        h.update(b"\0")
    return h.hexdigest()


def handler_digest(handler: Any) -> str:
    """A digest of what ``handler`` runs: its code and that of the user's own functions
    and classes it calls, a ``functools.partial``'s function and arguments
    (``digest.code_digest``)."""
    from phasewise.durable.digest import code_digest

    return str(code_digest(handler))
