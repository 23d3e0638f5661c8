"""Where a completed phase's result is kept: in its journal record, or in a file.

A small result (most are) goes into the journal record that says the phase completed,
so that one write records both; a large one is written to ``_results/<phase>.pkl``
first, and the record points at it. Either way the result is stored before the record
that says the phase completed: whatever the journal calls completed can be loaded.
A result that is plain JSON (None, numbers, strings, and lists and string-keyed dicts of
them) is kept as JSON, which loading cannot turn into code; any other is a signed
pickle (``signing``), and one that does not verify is never loaded.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from phasewise.durable.workdir import Workdir

__all__ = ["INLINE_LIMIT", "StoreFailed", "load_result", "store_result"]

INLINE_LIMIT = 16 * 1024
"""A signed pickle this large or more goes to a file of its own."""


class StoreFailed(Exception):
    """A result could not be stored (``reason`` says why); the run goes on without it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def store_result(workdir: Workdir, phase: str, value: Any) -> dict[str, str]:
    """Keep ``value``; returns the reference for the journal record (``StoreFailed`` if
    it cannot be pickled or written)."""
    from phasewise.durable import signing

    if _is_json(value):
        return {"json": value}
    if _looks_large(value):
        return _to_file(workdir, phase, value)
    try:
        data = signing.dump_signed(value)
    except Exception as exc:  # pickling raises many types
        raise StoreFailed(f"{type(exc).__name__}: {exc}") from None
    if len(data) < INLINE_LIMIT:
        return {"inline": base64.b64encode(data).decode("ascii")}
    return _to_file(workdir, phase, value)


_JSON_ATOMS = (type(None), bool, int, float, str)


def _is_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` comes back from JSON as it is (the same types, not just equal)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)  # JSON has no NaN or infinity
    if kind is int:
        return -(1 << 63) <= value < (1 << 63)
    if kind in _JSON_ATOMS:
        return kind is not str or len(value) < INLINE_LIMIT
    if kind not in (list, dict) or depth >= 3 or len(value) > 256:
        return False
    if kind is list:
        return all(_is_json(item, depth + 1) for item in value)
    return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())


def _looks_large(value: Any) -> bool:
    nbytes = getattr(value, "nbytes", None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        nbytes = len(value)
    return isinstance(nbytes, int) and nbytes >= INLINE_LIMIT


def _to_file(workdir: Workdir, phase: str, value: Any) -> dict[str, str]:
    from phasewise.durable import signing

    path = workdir.result_file(phase)
    try:
        signing.write_signed(path, value)
    except OSError as exc:
        raise StoreFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # pickling raises many types
        raise StoreFailed(f"{type(exc).__name__}: {exc}") from None
    return {"file": path.name}


def load_result(workdir: Workdir, ref: dict[str, str]) -> Any:
    """The value ``ref`` points at; raises ``UnsafeStoreError`` (``TamperedError``) for
    one that fails its checks, ``OSError`` for a file that cannot be read."""
    from phasewise.durable import signing

    if "json" in ref:
        return ref["json"]
    if "inline" in ref:
        return signing.load_signed(base64.b64decode(ref["inline"]))
    return signing.read_signed(workdir.results_dir / ref["file"])
