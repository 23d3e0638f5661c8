"""The current user's signing key: 32 random bytes, hex-encoded in ``$PHASEWISE_KEY_FILE``
if that is set, else ``$XDG_CONFIG_HOME/phasewise/key``, else ``~/.config/phasewise/key``.

Made on first use (mode 0600, in a 0700 directory; two processes making it at once
agree on one), read once per process (again, with its checks, when the file or the
directory holding it changes owner or mode), and refused if another user can read or
write it: whoever can read it can forge what phasewise would load.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from phasewise.core.errors import UnsafeStoreError
from phasewise.durable.safety import check_open, check_private, make_private_dir

__all__ = ["KEY_ENV", "key_path", "signing_key"]

KEY_ENV = "PHASEWISE_KEY_FILE"
"""The environment variable that moves the key file (tests point it into a temp dir)."""


def key_path() -> Path:
    """Where the current user's signing key lives (see the module docstring)."""
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"
    return base / "phasewise" / "key"


_keys: dict[str, tuple[tuple[int, ...], bytes]] = {}
_paths: dict[tuple[str | None, str | None], str] = {}


def signing_key() -> bytes:
    """The key, read once per key file (again, with its checks, when the file or the
    directory holding it changes owner or mode), made if missing. Cheap when nothing
    changed: two ``stat`` calls, since a run signs a result per phase."""
    where = (os.environ.get(KEY_ENV), os.environ.get("XDG_CONFIG_HOME"))
    path = _paths.get(where)
    if path is None:
        path = _paths[where] = str(key_path())
    known = _keys.get(path)
    if known is not None:
        try:
            if _signature(path) == known[0]:
                return known[1]
        except OSError:
            pass
    return _checked_key()


def _signature(path: str) -> tuple[int, ...]:
    info, holder = os.stat(path), os.stat(os.path.dirname(path))
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_mode, info.st_uid,
            holder.st_mode, holder.st_uid)


def _checked_key() -> bytes:
    path = key_path()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _create_key(path)
        info = os.stat(path)
    holder = os.stat(path.parent)
    signature = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_mode, info.st_uid,
                 holder.st_mode, holder.st_uid)
    known = _keys.get(str(path))
    if known is not None and known[0] == signature:
        return known[1]
    key = _read_key(path)
    _keys[str(path)] = (signature, key)
    return key


def _create_key(path: Path) -> None:
    make_private_dir(path.parent, "the directory of phasewise's signing key")
    text = secrets.token_hex(32).encode() + b"\n"
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".key.", suffix=".tmp")  # 0600
    try:
        os.write(fd, text)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(fd, "wb") as out:
                out.write(text)
                os.fsync(out.fileno())
    finally:
        os.unlink(temp)


def _read_key(path: Path) -> bytes:
    what = "phasewise's signing key"
    check_private(path, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = check_open(fd, path, what)
        if hasattr(os, "geteuid") and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UnsafeStoreError(
                f"phasewise refuses to use its signing key {path}: other users can read it "
                f"(mode {stat.S_IMODE(info.st_mode):04o}), and whoever reads it can forge "
                "results and cache entries that phasewise would load, and so run code as "
                f"you. To fix: `chmod 600 {path}` (if no one else has read it), or delete "
                "it and phasewise makes a new one (stored results are then computed again).",
                str(path))
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) < 32:
        raise UnsafeStoreError(
            f"phasewise's signing key {path} is not a key (expected 64 hex digits). Delete it "
            "and phasewise makes a new one (stored results are then computed again).",
            str(path))
    return key
