"""The result cache: a phase whose code and inputs are what they were last time is not run.

::

    cache_key(phase, context, params)            ResultCache(<workdir>/_cache)
      name, Python and phasewise versions         get(key, ttl) -> CacheLookup
      handler  -> code_digest: its code, and the  put(key, phase, value) -> warning | None
                  code of the user's functions    entries(), clear(phase)
                  and classes it reaches            <key[:2]>/<key>.pkl, signed pickles
      inputs   -> their pickle (protocol 5),        (signing.write_signed, 0600, in 0700
                  out-of-band buffers hashed        directories), meta {phase, key, created}
                  where they lie
      params   -> their pickle
      = SHA-256 hex

``digest`` says what a handler's digest covers. An entry is a hit only if it verifies
(``signing``), holds the key asked for, and is younger than the phase's TTL by the
wall-clock time stamped in it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasewise.core.errors import TamperedError, UnsafeStoreError
from phasewise.durable.digest import Digester, code_digest, feed
from phasewise.durable.safety import check_private, make_private_dir
from phasewise.durable.signing import open_signed, read_signed_meta, write_signed

if TYPE_CHECKING:
    from phasewise.core.phase import Phase

__all__ = ["CacheEntry", "CacheLookup", "ResultCache", "cache_key", "code_digest",
           "try_cache_key"]

_KEY = re.compile(r"[0-9a-f]{64}")


# keys


def cache_key(phase: Phase, context: Mapping[str, Any] | None,
              params: Mapping[str, Any] | None = None, *,
              digester: Digester | None = None) -> str | None:
    """The SHA-256 hex key of running ``phase`` on ``context`` (its dependencies' results)
    and ``params`` (pass them only if its handler receives them); None when the inputs
    cannot be pickled (see ``try_cache_key`` for why). Never raises for user data.

    ``digester``: one kept for keys taken at the same moment (see ``digest.Digester``);
    by default a new one, which reads the handler's globals as they are now."""
    return try_cache_key(phase, context, params, digester=digester)[0]


def try_cache_key(phase: Phase, context: Mapping[str, Any] | None,
                  params: Mapping[str, Any] | None = None, *,
                  digester: Digester | None = None) -> tuple[str | None, str | None]:
    """``(key, None)``, or ``(None, why)`` with ``why`` a phrase for a warning such as
    "its input 'load' cannot be pickled (TypeError: cannot pickle '_thread.lock' object)"."""
    from phasewise import __version__

    digester = digester or Digester()
    h = hashlib.sha256()
    feed(h, "phasewise cache key 1", sys.implementation.name,
         ".".join(map(str, sys.version_info[:3])), __version__, phase.name)
    try:
        feed(h, digester.value(phase.handler, strict=False))
    except Exception as exc:  # a bug of ours, or a handler too odd to walk
        return None, f"its handler cannot be fingerprinted ({_why(exc)})"
    inputs: Mapping[str, Any] = context or {}
    for name in _ordered(inputs):
        try:
            feed(h, "input", str(name), digester.value(inputs[name], strict=True))
        except Exception as exc:  # pickling raises anything
            return None, f"its input {name!r} cannot be pickled ({_why(exc)})"
    if params is not None:
        try:
            feed(h, "params", digester.value(dict(_items(params)), strict=True))
        except Exception as exc:
            return None, f"its params cannot be pickled ({_why(exc)})"
    return h.hexdigest(), None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _ordered(keys: Iterable[Any]) -> list[Any]:
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return keys


def _items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    return [(key, mapping[key]) for key in _ordered(mapping)]


# the store


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """What ``ResultCache.get`` found: ``hit`` and its ``value``, or a miss; ``warning``
    says why an entry that was there could not be used (tampered, unloadable)."""

    hit: bool
    value: Any = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One stored result. ``phase`` and ``created`` (wall clock) come from the entry's
    header, unverified: for listing, not for loading."""

    phase: str
    key: str
    size: int
    created: float
    path: Path


_MISS = CacheLookup(False)


class ResultCache:
    """Results kept by key under ``directory`` (created 0700 on the first ``put``).

    ``clock`` gives the wall-clock time stamped on new entries and against which ``get``
    measures their age: tests pass a fake one to age entries without waiting."""

    def __init__(self, directory: str | os.PathLike[str],
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(os.path.abspath(directory))
        self._clock = clock

    def path_for(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a cache key (64 lowercase hex digits): {key!r}")
        return self.directory / key[:2] / f"{key}.pkl"

    def get(self, key: str, ttl: float | None = None) -> CacheLookup:
        """The value stored under ``key`` if there is one younger than ``ttl`` seconds
        (None: any age) whose signature verifies. A tampered or unloadable entry is
        removed: a miss with a ``warning``. ``UnsafeStoreError`` if another user could
        write the directory or the entry."""
        path = self.path_for(key)
        if not os.path.lexists(path):
            if self.directory.exists():
                check_private(self.directory, "the result cache")
            return _MISS
        check_private(self.directory, "the result cache")
        try:
            phase = str(read_signed_meta(path).get("phase", "?"))
        except Exception:  # unreadable: open_signed below says what is wrong
            phase = "?"
        what = f"the cached result of phase {phase!r} ({path})"
        try:
            data = open_signed(path, what)
        except FileNotFoundError:
            return _MISS
        except TamperedError as exc:
            return self._discard(path, f"{exc} Removed it; the phase runs again.")
        except OSError as exc:
            return CacheLookup(False, None, f"{what} cannot be read ({_why(exc)}); the "
                               "phase runs again")
        if data.meta.get("key") != key:
            return self._discard(path, f"{what} holds the result of another key; removed "
                                 "it, the phase runs again")
        created = data.meta.get("created")
        age = self._clock() - created if isinstance(created, (int, float)) else -1.0
        if age < 0 or (ttl is not None and age >= ttl):
            return _MISS  # expired (or stamped in the future: the clock was set back)
        try:
            return CacheLookup(True, data.load())
        except Exception as exc:  # a class that no longer exists, ...
            return self._discard(path, f"{what} cannot be loaded ({_why(exc)}); removed "
                                 "it, the phase runs again")

    def put(self, key: str, phase: str, value: Any) -> str | None:
        """Store ``value`` as ``phase``'s result under ``key``, atomically. Returns a
        warning instead of raising when it cannot be pickled or written; raises
        ``UnsafeStoreError`` if another user could write the directory."""
        path = self.path_for(key)
        try:
            make_private_dir(self.directory, "the result cache")
            make_private_dir(path.parent, "the result cache")
            write_signed(path, value, {"phase": phase, "key": key,
                                       "created": self._clock()})
        except OSError as exc:
            return (f"phase {phase!r}: its result was not cached: cannot write {path} "
                    f"({exc.strerror or exc})")
        except UnsafeStoreError:
            raise
        except Exception as exc:  # pickling raises anything
            return (f"phase {phase!r}: its result was not cached: it cannot be pickled "
                    f"({_why(exc)})")
        return None

    def entries(self) -> list[CacheEntry]:
        """Every stored entry, by phase then age (headers read, nothing unpickled)."""
        found = []
        for path in self._files():
            try:
                info = path.stat()
            except OSError:
                continue
            try:
                meta = read_signed_meta(path)
            except Exception:  # not an entry of ours: listed, so that clear() removes it
                meta = {}
            created = meta.get("created")
            found.append(CacheEntry(str(meta.get("phase", "")), path.stem, info.st_size,
                                    float(created) if isinstance(created, (int, float))
                                    else info.st_mtime, path))
        return sorted(found, key=lambda e: (e.phase, e.created, e.key))

    def clear(self, phase: str | None = None) -> int:
        """Remove the entries of ``phase`` (every entry: None); returns how many."""
        removed = 0
        for entry in self.entries():
            if phase is None or entry.phase == phase:
                try:
                    entry.path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        if phase is None and self.directory.is_dir():
            for fan in self.directory.iterdir():
                for stray in fan.glob(".*.tmp") if fan.is_dir() else ():
                    stray.unlink(missing_ok=True)  # left by a write that was killed
                if fan.is_dir():
                    try:
                        fan.rmdir()
                    except OSError:
                        pass
        return removed

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [path for fan in sorted(self.directory.iterdir())
                if len(fan.name) == 2 and fan.is_dir()
                for path in sorted(fan.glob("*.pkl")) if _KEY.fullmatch(path.stem)]

    def _discard(self, path: Path, warning: str) -> CacheLookup:
        try:
            path.unlink()
        except OSError:
            pass
        return CacheLookup(False, None, warning)
