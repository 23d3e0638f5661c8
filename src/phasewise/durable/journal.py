"""The journal: every transition of a run, one JSON object per line, appended as it
happens.

Each record goes out in one ``write`` to a file opened with ``O_APPEND``, so a record is
in the file (the kernel's page cache) the moment the call returns: killing the run, even
with SIGKILL, loses nothing already recorded. A power cut can lose what the kernel had
not yet written out; the snapshot (snapshot.py) is fsync'd. A last line cut short (the
disk filled mid-record, say) is ignored when the journal is read.

The first line is a header naming the journal (``id``); the snapshot remembers that id
and how far into this journal it had read, so reading a state is "snapshot, then the
records after it" — and a snapshot of a journal that has since been replaced is not
mixed with the new one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["Journal", "read_journal"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Journal:
    """Appends records to a journal file (opened once, for the run)."""

    def __init__(self, path: Path, *, fresh: bool, journal_id: str | None = None) -> None:
        """``fresh``: start a new journal (named ``journal_id``, or a new id) in place of
        any old one; else append to the existing one (a resumed run)."""
        self.path = path
        if fresh or not path.exists():
            self.id = journal_id or uuid.uuid4().hex
            temp = path.with_name(path.name + ".new")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, _encode({"k": "journal", "id": self.id}) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        else:
            self.id = _header_id(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, _encode(record) + b"\n")

    def offset(self) -> int:
        """Bytes written so far (where a reader would resume)."""
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _header_id(path: Path) -> str:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        header = _decode(first)
        return str(header["id"])
    except (msgspec.DecodeError, KeyError, TypeError):
        from phasewise.durable.workdir import WorkdirError

        raise WorkdirError(f"journal {path} is corrupted (no header line); remove the work "
                           "directory or run without --resume") from None


def read_journal(path: Path, journal_id: str | None = None,
                 offset: int = 0) -> Iterator[dict[str, Any]]:
    """The records of the journal at ``path`` from byte ``offset`` on (header excluded).

    Nothing, if the journal is missing or is not the one ``journal_id`` names. A line cut
    short at the end is skipped; a malformed line before the end raises ``WorkdirError``.
    """
    try:
        with open(path, "rb") as f:
            header = f.readline()
            try:
                found = str(_decode(header)["id"])
            except (msgspec.DecodeError, KeyError, TypeError):
                from phasewise.durable.workdir import WorkdirError

                raise WorkdirError(f"journal {path} is corrupted (no header line)") from None
            if journal_id is not None and found != journal_id:
                return
            if offset > f.tell():
                f.seek(offset)
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line:
            continue
        try:
            yield _decode(line)
        except msgspec.DecodeError:
            if number >= last - (1 if not lines[last] else 0):
                return  # the last record, cut short
            from phasewise.durable.workdir import WorkdirError

            raise WorkdirError(f"journal {path} is corrupted at a record in the middle; "
                               "remove the work directory or run without --resume") from None
