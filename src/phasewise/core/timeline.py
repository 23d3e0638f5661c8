"""A PipelineState as a JSON-ready timeline, and a holder for the active pipeline's state."""

from __future__ import annotations

import threading
from typing import Any

from phasewise.core.state import PipelineState

__all__ = ["get_active_pipeline", "pipeline_to_timeline", "set_active_pipeline"]

_lock = threading.Lock()
_active: PipelineState | None = None


def set_active_pipeline(state: PipelineState | None) -> None:
    """Publish ``state`` for readers in other threads (e.g. from a Store listener)."""
    global _active
    with _lock:
        _active = state


def get_active_pipeline() -> PipelineState | None:
    """The state last published with ``set_active_pipeline``, or None."""
    with _lock:
        return _active


def pipeline_to_timeline(state: PipelineState) -> dict[str, Any]:
    """``{"pipeline", "status", "elapsed", "progress", "phases": [...]}`` for ``state``."""
    return {
        "pipeline": state.name,
        "status": state.status,
        "elapsed": round(state.elapsed, 3),
        "progress": round(state.progress, 3),
        "phases": [
            {
                "name": p.name,
                "status": p.status,
                "elapsed": round(p.elapsed, 3),
                "attempt": p.attempt,
                "error": p.error or None,
                "log_count": len(p.logs),
                "cached": p.cached,
            }
            for p in state.phases
        ],
    }
