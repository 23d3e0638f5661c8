"""Digests of code and values for cache keys, the same in every process.

``Digester.value(obj)`` hashes ``obj``'s pickle (cloudpickle, protocol 5) as it is
written, out-of-band buffers where they lie, with two changes, since this pickle is only
ever hashed, never loaded: sets are sorted, and a function or class of the user's stands
as a reference (its name and its code) -- and the digest then also covers everything of
the user's that ``obj`` reaches::

    value(obj) = H(obj's pickle with references,
                   sorted(reference + own digest of each function or class reached))

A function's own digest covers its code (not its file, line or module name: ``python
flow.py`` and an import agree), the globals its code names (and the names the code
nested in it names; for a module of the user's, the members those names pick from it),
the contents of its closure cells and its defaults. A class's own digest covers its
methods and attributes, bases and metaclass. What they refer to of the user's is reached
in turn, each once (so functions that call each other are no trouble), and since an own
digest does not depend on where the walk came from, one ``Digester`` may serve every
handler of a run. A ``functools.partial`` stands for its function and arguments, a bound
method for its function and its object (state and class).

A function or class is the user's unless it comes from the standard library,
site-packages or phasewise itself: those are named, not walked (with their package's
``__version__``, for a module). A global or closure value that cannot be pickled gives a
digest of its type, so that a handler holding a lock still has one; a value that must
be hashed in full (an input) is ``value(obj, strict=True)``, which raises instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["Digester", "code_digest", "feed"]

_U64 = struct.Struct("<Q")
_SETS = (set, frozenset)
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})


def code_digest(handler: Any, digester: Digester | None = None) -> str:
    """SHA-256 hex of what ``handler`` runs: its code and the code and data it reaches
    (see the module docstring). The same in every process for the same source; never
    raises. ``digester``: one shared by the handlers of a run (see ``Digester``)."""
    try:
        digest = (digester or Digester()).value(handler, strict=False)
    except Exception:  # a bug of ours, or a handler too odd to walk: its name at least
        digest = "unwalkable " + getattr(handler, "__qualname__", type(handler).__qualname__)
    return hashlib.sha256(digest.encode("utf-8", "surrogatepass")).hexdigest()


def feed(h: Any, *parts: str | bytes) -> None:
    """Each part into hash ``h``, length first, so that parts cannot run together."""
    pieces: list[bytes] = []
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
        pieces += (_U64.pack(len(data)), data)
    h.update(b"".join(pieces))


class _Sink:
    """The file a hashing pickler writes to: every piece goes straight into the hash."""

    __slots__ = ("write",)

    def __init__(self, h: Any) -> None:
        self.write = h.update


@functools.cache
def _hash_pickler() -> type:
    import cloudpickle

    class HashPickler(cloudpickle.Pickler):
        """cloudpickle, except that the user's functions and classes become references
        and sets are sorted (a pickle only ever hashed, never loaded)."""

        def __init__(self, file: _Sink, digester: Digester, reached: list[Any],
                     buffer_callback: Callable[[Any], Any]) -> None:
            super().__init__(file, protocol=5, buffer_callback=buffer_callback)
            self.digester, self.reached = digester, reached

        def persistent_id(self, obj: Any) -> Any:
            # the one hook the C pickler calls for every object, sets included
            if type(obj) in _SETS:
                try:
                    return type(obj).__name__, sorted(obj)
                except TypeError:  # not comparable: as they come
                    return None
            return None

        def reducer_override(self, obj: Any) -> Any:
            token = self.digester.token(obj, self.reached)
            if token is not None:
                return str, (token,)
            return super().reducer_override(obj)

    return HashPickler


class Digester:
    """Digests of values and of the user's code they reach; each function and class is
    digested once, and a digester may be kept for many values taken at the same moment
    (every phase of a run as it starts: a global's value is read when first reached)."""

    def __init__(self) -> None:
        self._own: dict[int, tuple[str, list[Any]]] = {}  # own digest, what it refers to
        self._codes: dict[int, str] = {}
        self._alive: list[Any] = []  # what the ids above belong to, kept from reuse

    def value(self, obj: Any, strict: bool) -> str:
        """A digest of ``obj`` and of all of the user's code it reaches. If it cannot be
        pickled: raise (``strict``) or a digest of its type."""
        reached: list[Any] = []
        digest = self._shallow(obj, strict, reached)
        if not reached:
            return digest
        h = hashlib.sha256()
        feed(h, digest, *self._reach(reached))
        return h.hexdigest()

    def _reach(self, start: list[Any]) -> list[str]:
        """Reference and own digest of everything of the user's reached from ``start``."""
        found: dict[int, str] = {}
        todo = list(start)
        while todo:
            obj = todo.pop()
            if id(obj) in found:
                continue
            own, refers = self._own_digest(obj)
            found[id(obj)] = f"{self._reference(obj)} = {own}"
            todo += refers
        return sorted(found.values())

    def _shallow(self, obj: Any, strict: bool, reached: list[Any]) -> str:
        """A digest of ``obj`` in which the user's functions and classes are references
        (appended to ``reached``)."""
        kind = type(obj)
        if kind in _ATOMS and (kind not in (str, bytes) or len(obj) <= 256):
            return f"{kind.__name__}:{obj!r}"
        if kind in (tuple, list, dict) and len(obj) <= 16:  # small: quicker than a pickle
            h = hashlib.sha256()
            feed(h, kind.__name__, *(self._shallow(item, strict, reached) for item in
                                     (obj if kind is not dict else _flat(obj))))
            return h.hexdigest()
        token = self.token(obj, reached)
        if token is not None:
            return token
        h = hashlib.sha256()
        buffers: list[Any] = []
        mark = len(reached)
        try:
            _hash_pickler()(_Sink(h), self, reached, buffers.append).dump(obj)
        except Exception:
            if strict:
                raise
            del reached[mark:]
            return self._unpicklable(obj, reached)
        for buffer in buffers:
            try:
                raw = buffer.raw()
            except BufferError:  # not contiguous
                raw = memoryview(buffer.tobytes())
            h.update(_U64.pack(raw.nbytes))
            h.update(raw)
        return h.hexdigest()

    def _unpicklable(self, obj: Any, reached: list[Any]) -> str:
        cls = type(obj)
        try:
            return f"unpicklable {self._shallow(cls, True, reached)}"
        except Exception:
            return f"unpicklable {cls.__module__}.{cls.__qualname__}"

    def token(self, obj: Any, reached: list[Any]) -> str | None:
        """What stands for ``obj`` in a hashing pickle, or None to pickle it as usual;
        the user's functions and classes it names are appended to ``reached``."""
        kind = type(obj)
        if kind is types.FunctionType:
            if not _users_function(obj):
                return None
            reached.append(obj)
            return self._reference(obj)
        if kind is types.MethodType:
            return (f"method {self._shallow(obj.__func__, False, reached)} "
                    f"of {self._shallow(obj.__self__, False, reached)}")
        if kind is functools.partial:
            return (f"partial {self._shallow(obj.func, False, reached)} "
                    f"{self._shallow(obj.args, False, reached)} "
                    f"{self._shallow(obj.keywords, False, reached)}")
        if isinstance(obj, type):
            if not _users_module(obj.__module__):
                return None
            reached.append(obj)
            return self._reference(obj)
        if kind is types.CodeType:
            return self._code(obj)
        if kind is types.ModuleType:
            return _module_token(obj)
        return None

    def _reference(self, obj: Any) -> str:
        """A function or class of the user's as another one refers to it: its name and
        code (for a class, the names of its members), not what it reaches."""
        if isinstance(obj, type):
            h = hashlib.sha256()
            feed(h, *sorted(vars(obj)))
            return f"class {obj.__qualname__} {h.hexdigest()}"
        return f"function {obj.__qualname__} {self._code(obj.__code__)}"

    def _own_digest(self, obj: Any) -> tuple[str, list[Any]]:
        known = self._own.get(id(obj))
        if known is None:
            refers: list[Any] = []
            own = self._class(obj, refers) if isinstance(obj, type) else self._function(
                obj, refers)
            known = self._own[id(obj)] = (own, refers)
            self._alive.append(obj)
        return known

    def _function(self, fn: types.FunctionType, refers: list[Any]) -> str:
        h = hashlib.sha256()
        feed(h, self._code(fn.__code__))
        names = _names(fn.__code__)
        namespace = fn.__globals__
        for global_name in sorted(names & namespace.keys()):
            feed(h, global_name, self._global(namespace[global_name], names, refers, set()))
        feed(h, self._shallow(fn.__defaults__, False, refers),
             self._shallow(fn.__kwdefaults__, False, refers))
        for cell in fn.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # empty cell
                feed(h, "empty")
            else:
                feed(h, self._shallow(content, False, refers))
        return h.hexdigest()

    def _global(self, value: Any, names: frozenset[str], refers: list[Any],
                seen: set[int]) -> str:
        """A global's value; for a module of the user's, the members ``names`` pick."""
        if not (isinstance(value, types.ModuleType) and _users_module(value.__name__)):
            return self._shallow(value, False, refers)
        if id(value) in seen:
            return f"module {value.__name__} (again)"
        seen.add(id(value))
        h = hashlib.sha256()
        members = vars(value)
        for name in sorted(names & members.keys()):
            if not (name.startswith("__") and name.endswith("__")):
                feed(h, name, self._global(members[name], names, refers, seen))
        return f"module {value.__name__} {h.hexdigest()}"

    def _class(self, cls: type, refers: list[Any]) -> str:
        h = hashlib.sha256()
        feed(h, self._shallow(type(cls), False, refers))
        for base in cls.__bases__:
            feed(h, self._shallow(base, False, refers))
        for attr, member in sorted(vars(cls).items(), key=lambda item: item[0]):
            parts = _unwrap(member)
            if parts is None and attr.startswith("__") and attr.endswith("__"):
                continue  # __dict__, __module__, __slots__, __dataclass_fields__, ...
            feed(h, attr, *(self._shallow(part, False, refers)
                            for part in parts or (member,)))
        return h.hexdigest()

    def _code(self, code: types.CodeType) -> str:
        known = self._codes.get(id(code))
        if known is not None:
            return known
        h = hashlib.sha256()
        feed(h, getattr(code, "co_qualname", code.co_name), code.co_code,
             getattr(code, "co_exceptiontable", b""),
             repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                   code.co_flags, code.co_names, code.co_varnames, code.co_freevars,
                   code.co_cellvars)))
        for const in code.co_consts:
            feed(h, self._code(const) if isinstance(const, types.CodeType)
                 else _constant(const))
        digest = self._codes[id(code)] = h.hexdigest()
        self._alive.append(code)
        return digest


def _flat(mapping: dict[Any, Any]) -> list[Any]:
    return [part for item in mapping.items() for part in item]


def _unwrap(member: Any) -> tuple[Any, ...] | None:
    """The functions inside a class member that wraps them, or None."""
    if isinstance(member, types.FunctionType):
        return (member,)
    if isinstance(member, (staticmethod, classmethod)):
        return (member.__func__,)
    if isinstance(member, property):
        return (member.fget, member.fset, member.fdel)
    if isinstance(member, functools.cached_property):
        return (member.func,)
    if isinstance(member, functools.partialmethod):
        return (member.func, member.args, member.keywords)
    return None


def _constant(value: Any) -> str:
    """A code constant as text, the same in every process (frozensets sorted)."""
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(map(_constant, value))) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(map(_constant, value)) + ")"
    return f"{type(value).__name__}:{value!r}"


@functools.lru_cache(maxsize=4096)
def _names(code: types.CodeType) -> frozenset[str]:
    """The names ``code`` and the code nested in it use (globals and attributes)."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return frozenset(found)


def _module_token(module: types.ModuleType) -> str:
    name = module.__name__
    if _users_module(name):
        return f"module {name}"
    top = sys.modules.get(name.partition(".")[0])
    return f"module {name} {getattr(top, '__version__', '')}"


# whose code is it


def _users_function(fn: types.FunctionType) -> bool:
    filename = fn.__code__.co_filename
    if filename.startswith("<frozen"):
        return False
    if filename.startswith("<"):  # exec'd (dataclass methods, notebooks): by its module
        return _users_module(fn.__module__)
    return _users_file(filename)


def _users_module(name: str | None) -> bool:
    if not name or name in ("__main__", "__mp_main__"):
        return True
    top = name.partition(".")[0]
    library = (top == "phasewise" or top in sys.builtin_module_names
               or top in sys.stdlib_module_names)
    module = sys.modules.get(name)
    if module is None:  # a namespace made on the fly
        return not library
    filename = getattr(module, "__file__", None)
    if filename:
        return _users_file(filename)
    return not library and getattr(module, "__spec__", None) is None


@functools.lru_cache(maxsize=4096)
def _users_file(filename: str) -> bool:
    real = os.path.realpath(filename)
    return not any(real == d or real.startswith(d + os.sep) for d in _library_dirs())


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    import phasewise

    found = {sysconfig.get_paths().get(k, "") for k in
             ("stdlib", "platstdlib", "purelib", "platlib")}
    found.update(getattr(site, "getsitepackages", list)())
    found.add(getattr(site, "getusersitepackages", str)())
    found.update(p for p in sys.path if os.path.basename(p) in ("site-packages",
                                                                 "dist-packages"))
    found.add(os.path.dirname(phasewise.__file__))
    return tuple(sorted({os.path.realpath(d) for d in found if d}))
