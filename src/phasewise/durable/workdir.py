"""A run's work directory: where each file lives, creating it privately, and its lock.

::

    <workdir>/                    0700, refused if another user can write to it
      pipeline-state.json         the snapshot (snapshot.py)
      journal.jsonl               every transition, appended (journal.py)
      _results/<phase>.pkl        results too large for the journal (signed pickles)
      _cache/                     the result cache (cache.py)
      _lock                       flock'd while a run uses the directory
      <phase>/                    a phase's own folder

The lock is a POSIX record lock (``lockf``) on ``_lock``: the kernel releases it when
the process holding it ends in any way, so a lock left by a killed run is taken over
without a question, and two runs racing for it cannot both win. Unlike ``flock``, it is
not shared with forked children (a process pool's workers outliving a killed run do not
keep the directory locked). Such locks do not keep a process from itself, so this
process's own locks are also kept in ``_held``. The file names the process that holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from phasewise.core.errors import WorkdirError, WorkdirLocked

__all__ = ["RESERVED_NAMES", "Workdir", "WorkdirError", "WorkdirLocked", "default_workdir"]

RESERVED_NAMES = frozenset({"pipeline-state.json", "journal.jsonl", "logs.jsonl",
                            "_results", "_cache", "_lock"})
"""Names in a work directory that are phasewise's own: no phase may have one."""


def default_workdir(pipeline_name: str) -> Path:
    """``.phasewise/<pipeline name>`` under the current directory."""
    return Path.cwd() / ".phasewise" / quote(pipeline_name, safe="")


class Workdir:
    """The files of one work directory (nothing is created until ``create``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.state_file = self.path / "pipeline-state.json"
        self.journal_file = self.path / "journal.jsonl"
        self.logs_file = self.path / "logs.jsonl"
        self.results_dir = self.path / "_results"
        self.cache_dir = self.path / "_cache"
        self.lock_file = self.path / "_lock"
        self._lock_fd: int | None = None

    def result_file(self, phase: str) -> Path:
        return self.results_dir / (quote(phase, safe="") + ".pkl")

    def create(self) -> None:
        """Make the directory (0700) and its results folder, or check the existing ones:
        refused if they are files, cannot be written, or another user can write to them."""
        from phasewise.durable.safety import make_private_dir

        if self.path.exists() and not self.path.is_dir():
            raise WorkdirError(f"work directory {self.path} is a file, not a directory; "
                               "pass another --workdir")
        try:
            make_private_dir(self.path)
            make_private_dir(self.results_dir)
        except PermissionError as exc:
            raise WorkdirError(f"cannot create work directory {self.path}: {exc.strerror}; "
                               "pass a --workdir you can write to") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise WorkdirError(f"work directory {self.path} is not writable; pass a "
                               "--workdir you can write to")

    # the lock

    def lock(self) -> None:
        """Take the directory for this process, or raise ``WorkdirLocked`` naming the
        process that has it."""
        key = str(self.lock_file)
        with _held_lock:
            if key in _held:  # this process has it (a second open and close would free it)
                raise WorkdirLocked(f"work directory {self.path} is in use by "
                                    f"{_read_holder(_held[key])}; wait for that run to end, "
                                    "or pass another --workdir")
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    os.close(fd)
                    raise
                holder = _read_holder(fd)
                os.close(fd)
                raise WorkdirLocked(f"work directory {self.path} is in use by {holder}; "
                                    "wait for that run to end, or pass another --workdir"
                                    ) from None
            os.ftruncate(fd, 0)
            who = {"pid": os.getpid(), "since": time.time(), "command": " ".join(sys.argv)}
            os.pwrite(fd, json.dumps(who).encode(), 0)
            _held[key] = fd
            self._lock_fd = fd

    def unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with _held_lock:
                _held.pop(str(self.lock_file), None)
                os.ftruncate(fd, 0)
                os.close(fd)  # releases the lock


_held: dict[str, int] = {}  # lock file -> fd, for the locks this process holds
_held_lock = threading.Lock()


def _read_holder(fd: int) -> str:
    try:
        who = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who["since"]))
        return f"process {who['pid']} ({who['command']}, since {since})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"
