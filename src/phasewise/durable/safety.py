"""Refusing to load what another user could have written.

A pickle runs code when it is loaded. A state, result or cache file that a user other
than the current one could have written (or swapped for one of their own) could make
phasewise run anything as the current user, so phasewise checks a file, and the
directory that holds it, before loading it:

* the file or directory itself must belong to the current user and must not be
  writable by its group or by others;
* the directory holding it must belong to the current user or to root and must not be
  writable by its group or by others -- unless it is *sticky* (like ``/tmp``) and
  belongs to the current user or root, since in a sticky directory nobody else can
  rename or remove the current user's entries.

What is actually read is checked again through the open file (``check_open``), so a
file swapped between the check and the open is caught as well. On systems without
POSIX owners and modes (Windows) the checks pass.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from phasewise.core.errors import UnsafeStoreError

__all__ = ["check_open", "check_private", "make_private_dir"]

_POSIX = hasattr(os, "geteuid")
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def check_private(path: str | os.PathLike[str], what: str) -> None:
    """Raise ``UnsafeStoreError`` if ``path`` (a file or directory, which must exist) or
    the directory holding it can be written by a user other than the current one.

    ``what`` names the thing for the message ("the run's state", "a cache entry"). An
    ``OSError`` from looking at ``path`` (it does not exist, say) propagates."""
    if not _POSIX:
        return
    path = Path(os.path.abspath(path))
    _check_own(path, os.stat(path), what)
    holders = {path.parent, Path(os.path.realpath(path)).parent}
    for holder in sorted(holders):
        _check_holder(path, holder, os.stat(holder), what)


def check_open(fd: int, path: str | os.PathLike[str], what: str) -> os.stat_result:
    """``check_private``'s test of the file itself, on the open file ``fd`` (what will be
    read, whatever ``path`` names by now); returns its ``fstat``."""
    info = os.fstat(fd)
    if _POSIX:
        _check_own(Path(os.path.abspath(path)), info, what)
    return info


def make_private_dir(path: str | os.PathLike[str], what: str = "a work directory") -> Path:
    """Create ``path`` and any missing parents with mode 0700, or, if it exists, check it
    with ``check_private``; returns it as an absolute ``Path``.

    ``NotADirectoryError`` if it is a file; ``UnsafeStoreError`` if another user can
    write to it or to the directory holding it."""
    path = Path(os.path.abspath(path))
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # made at the same time by someone else: checked below
            continue
        if _POSIX and stat.S_IMODE(os.stat(directory).st_mode) != 0o700:
            os.chmod(directory, 0o700)  # the umask may have taken bits away
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {path} is a file, not a directory",
                                 str(path))
    check_private(path, what)
    return path


def _check_own(path: Path, info: os.stat_result, what: str) -> None:
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    if info.st_uid != os.geteuid():
        _refuse(path, what, f"the {kind} belongs to {_user(info.st_uid)}, not to you "
                f"({_user(os.geteuid())})",
                f"remove it, or use a {kind} of your own")
    if info.st_mode & _OTHERS_WRITE:
        _refuse(path, what, f"the {kind} can be written by {_writers(info.st_mode)} "
                f"(mode {_mode(info)})",
                f"if you trust what is in it, run `chmod go-w {_quote(path)}`; or use a "
                "private directory")


def _check_holder(path: Path, holder: Path, info: os.stat_result, what: str) -> None:
    trusted = info.st_uid in (os.geteuid(), 0)
    if not trusted:
        _refuse(path, what, f"the directory holding it, {holder}, belongs to "
                f"{_user(info.st_uid)}, who could replace it",
                "use a directory of your own")
    if info.st_mode & _OTHERS_WRITE and not info.st_mode & stat.S_ISVTX:
        _refuse(path, what, f"the directory holding it, {holder}, can be written by "
                f"{_writers(info.st_mode)} (mode {_mode(info)}), who could replace it",
                f"run `chmod go-w {_quote(holder)}`, or use a private directory "
                "(phasewise makes its own with mode 0700)")


def _refuse(path: Path, what: str, reason: str, fix: str) -> None:
    raise UnsafeStoreError(
        f"phasewise refuses to load {what} from {path}: {reason}. Loading it would unpickle "
        "it, and a pickle runs code: whoever can write it could make phasewise run anything "
        f"as you. To fix: {fix}.", str(path))


def _writers(mode: int) -> str:
    if mode & stat.S_IWOTH:
        return "any user"
    return "its group"


def _mode(info: os.stat_result) -> str:
    return f"{stat.S_IMODE(info.st_mode):04o}"


def _user(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))
