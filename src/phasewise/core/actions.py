"""Action: what a reducer receives, and the names of the pipeline's actions.

Payloads are plain dicts, except ``@@PIPELINE_START`` whose payload is a
``time.monotonic()`` value. Every phase action carries ``name``; the runner also adds
``timestamp`` (monotonic seconds), which the reducer uses for elapsed times. An action
without one (dispatched by hand, milo-style) is timed with the clock when it is reduced.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "INIT",
    "PHASE_CANCELLED",
    "PHASE_COMPLETE",
    "PHASE_FAILED",
    "PHASE_LOG",
    "PHASE_RETRY",
    "PHASE_SKIPPED",
    "PHASE_START",
    "PIPELINE_COMPLETE",
    "PIPELINE_START",
    "Action",
]

INIT = "@@INIT"
PIPELINE_START = "@@PIPELINE_START"  # payload: monotonic start time
PIPELINE_COMPLETE = "@@PIPELINE_COMPLETE"  # payload: None or {status, timestamp}
PHASE_START = "@@PHASE_START"  # {name, attempt, executor?, worker?}
PHASE_COMPLETE = "@@PHASE_COMPLETE"  # {name, result}
PHASE_FAILED = "@@PHASE_FAILED"  # {name, error, traceback?}
PHASE_SKIPPED = "@@PHASE_SKIPPED"  # {name, error}
PHASE_RETRY = "@@PHASE_RETRY"  # {name, attempt, error, max_retries}
PHASE_LOG = "@@PHASE_LOG"  # {name, line, stream, timestamp}
PHASE_CANCELLED = "@@PHASE_CANCELLED"  # {name, reason}


class Action(msgspec.Struct, frozen=True):
    """An event for a reducer: a ``type`` string and an optional ``payload``.

    A frozen msgspec Struct rather than a dataclass: one is made for every log line, and
    a Struct is several times cheaper to build."""

    type: str
    payload: Any = None
