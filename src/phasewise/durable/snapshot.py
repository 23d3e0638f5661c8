"""``pipeline-state.json``: a run's state as a whole, rewritten atomically.

Written to a temporary file in the same directory, fsync'd, then renamed over the old
one: whenever the run is killed, the file is the old snapshot or the new one, never half
of either. A snapshot names the journal it was taken from and how far into it, so the
state now is the snapshot plus the journal's records after that point (``replay``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from phasewise.durable.workdir import WorkdirError

__all__ = ["SCHEMA", "read_snapshot", "write_snapshot"]

SCHEMA = 1
"""The snapshot's schema version; a file with another one is refused, not guessed at."""

_encode = msgspec.json.Encoder().encode


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        data = memoryview(_encode(snapshot))
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def read_snapshot(path: Path, pipeline: str | None = None) -> dict[str, Any]:
    """The snapshot at ``path``, checked: ``WorkdirError`` naming the file and what is wrong
    if it is missing, empty, not JSON, of another schema or (given ``pipeline``) of
    another pipeline."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorkdirError(f"no run is recorded in {path.parent} ({path.name} does not "
                           "exist)") from None
    except OSError as exc:
        raise WorkdirError(f"cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        raise WorkdirError(f"state file {path} is empty; remove it (or the work directory) "
                           "to start afresh")
    try:
        snapshot = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise WorkdirError(f"state file {path} is corrupted ({exc}); remove it (or the "
                           "work directory) to start afresh") from None
    if not isinstance(snapshot, dict) or "schema" not in snapshot:
        raise WorkdirError(f"{path} is not a phasewise state file")
    if snapshot["schema"] != SCHEMA:
        raise WorkdirError(f"state file {path} has schema version {snapshot['schema']!r}; "
                           f"this phasewise reads version {SCHEMA} (was it written by "
                           "another version of phasewise?)")
    if pipeline is not None and snapshot.get("pipeline") != pipeline:
        raise WorkdirError(f"state file {path} belongs to pipeline "
                           f"{snapshot.get('pipeline')!r}, not {pipeline!r}; pass the "
                           "--workdir of this pipeline's runs")
    for key in ("phases", "journal", "offset", "status"):
        if key not in snapshot:
            raise WorkdirError(f"state file {path} is corrupted (no {key!r})")
    return snapshot
